"""HTTP only: the FastAPI app, routes, request/response models."""
