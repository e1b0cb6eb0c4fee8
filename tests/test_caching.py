"""Conditional reads and the bulk payload: ETag, If-None-Match -> 304, Cache-Control, HEAD,
gzip, on GET /allocation and GET /allocations, the same on the fast path and via FastAPI."""

import gzip

import fastapi
import pytest

from tests.helpers import CONTRACT_POST


def post(client, experiment_id: str, *arms: str) -> None:
    variants = [
        {"variant_id": a, "impressions": 1000, "clicks": 10 * (i + 1)} for i, a in enumerate(arms)
    ]
    body = {**CONTRACT_POST, "experiment_id": experiment_id, "variants": variants}
    assert client.post("/data", json=body).status_code == 200


@pytest.fixture
def published(client):
    post(client, "ctr_test", "control", "variant")
    post(client, "b_test", "x", "y", "z")
    client.post("/recompute")
    post(client, "a_new", "p", "q")  # not computed yet: served as the equal split
    return client


@pytest.fixture
def no_fastapi(monkeypatch):
    """Fail any request that reaches FastAPI: the fast path must answer alone."""

    def not_reached(*args):
        raise AssertionError("the request went through FastAPI")

    monkeypatch.setattr(fastapi.FastAPI, "__call__", not_reached)


def test_an_allocation_carries_a_strong_etag_and_cache_control(published):
    response = published.get("/allocation?experiment_id=ctr_test")
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert response.headers["cache-control"] == "max-age=1, stale-if-error=86400"


@pytest.mark.parametrize("path", ["/allocation?experiment_id=ctr_test", "/allocations"])
def test_if_none_match_with_the_current_etag_gives_304_without_a_body(published, no_fastapi, path):
    etag = published.get(path).headers["etag"]
    for condition in [etag, f"W/{etag}", f'"other", {etag}', "*"]:
        again = published.get(path, headers={"If-None-Match": condition})
        assert again.status_code == 304, condition
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert "cache-control" in again.headers


@pytest.mark.parametrize("path", ["/allocation?experiment_id=ctr_test", "/allocations"])
def test_another_etag_gets_the_full_body(published, path):
    response = published.get(path, headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.content == published.get(path).content


@pytest.mark.parametrize("path", ["/allocation?experiment_id=ctr_test", "/allocations"])
def test_head_gives_the_headers_of_get_and_no_body(published, no_fastapi, path):
    head = published.head(path)
    get = published.get(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_the_etag_changes_when_the_split_is_republished(published):
    before = published.get("/allocation?experiment_id=b_test").headers["etag"]
    published.post("/experiments/b_test/variants/x/archive")
    published.post("/recompute")
    after = published.get("/allocation?experiment_id=b_test", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["etag"] != before


def test_the_bulk_payload_holds_every_served_split_sorted_by_id(published):
    bulk = published.get("/allocations")
    assert bulk.status_code == 200
    items = bulk.json()["experiments"]
    assert [e["experiment_id"] for e in items] == ["a_new", "b_test", "ctr_test"]
    for item in items:
        single = published.get(f"/allocation?experiment_id={item['experiment_id']}").json()
        assert {k: v for k, v in item.items() if k != "assignment"} == single
        assert [a["variant_id"] for a in item["assignment"]["arms"]] == [
            a["variant_id"] for a in single["allocations"]
        ]
    assert items[0]["status"] == "not_computed"


def test_the_bulk_payload_is_gzipped_when_the_client_accepts_it(published, no_fastapi):
    plain = published.get("/allocations", headers={"Accept-Encoding": "identity"})
    packed = published.get("/allocations", headers={"Accept-Encoding": "br, gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == plain.headers["vary"] == "accept-encoding"
    with published.stream("GET", "/allocations", headers={"Accept-Encoding": "gzip"}) as r:
        wire = b"".join(r.iter_raw())
    assert gzip.decompress(wire) == plain.content
    assert int(packed.headers["content-length"]) == len(wire) < len(plain.content)
    assert packed.headers["etag"] != plain.headers["etag"]


def test_gzip_refused_with_q_zero_is_not_sent(published):
    response = published.get("/allocations", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in response.headers


def test_fastapi_routes_give_the_fast_path_answer_header_for_header(published):
    for fast, routed in [
        ("/allocation?experiment_id=ctr_test", "/allocation?experiment_id=ctr%5Ftest"),
        ("/allocations", "/allocations?anything=1"),
    ]:
        a, b = published.get(fast), published.get(routed)
        assert (a.status_code, a.headers, a.content) == (b.status_code, b.headers, b.content)
        condition = {"If-None-Match": a.headers["etag"]}
        a, b = published.get(fast, headers=condition), published.get(routed, headers=condition)
        assert a.status_code == b.status_code == 304
        assert a.headers == b.headers


def test_either_encodings_etag_of_the_bulk_payload_gives_a_304(published, no_fastapi):
    # A client that got the plain body (say, before the gzip one was built after a publish)
    # and asks again accepting gzip has the same content: a 304, not the payload again.
    plain = published.get("/allocations", headers={"Accept-Encoding": "identity"})
    packed = published.get("/allocations", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["etag"] != packed.headers["etag"]
    again = published.get(
        "/allocations",
        headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""
    back = published.get(
        "/allocations",
        headers={"Accept-Encoding": "identity", "If-None-Match": packed.headers["etag"]},
    )
    assert back.status_code == 304
    other = published.get("/allocations", headers={"If-None-Match": '"not-this-one"'})
    assert other.status_code == 200
