"""A web request loop with a bounded LRU cache, shaped like a small WSGI-style service.

Each request is raw HTTP text: it is parsed (request line, headers, query string, cookies),
passed down a chain of 24 middlewares (as framework stacks are), routed by regex, and served by
a view that looks the resource up in an ``OrderedDict`` LRU bounded at ``CACHE_SIZE`` entries
(computing and inserting it on a miss, evicting the oldest), builds a response dict in a long
function and serialises it to JSON and a header block. The cache fills during the first few
hundred requests and then stays at its bound.
"""

from __future__ import annotations

import json
import random
import re
from collections import OrderedDict
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote

REQUESTS_AT_SCALE_1 = 12000
CACHE_SIZE = 512
MIDDLEWARE_DEPTH = 24

Request = dict[str, Any]
Response = dict[str, Any]
Handler = Callable[[Request], Response]

_ROUTES = (
    (re.compile(r"^/api/users/(?P<id>\d+)$"), "user"),
    (re.compile(r"^/api/users/(?P<id>\d+)/orders$"), "orders"),
    (re.compile(r"^/api/search$"), "search"),
)


def make_raw_request(rng: random.Random, n: int) -> str:
    kind = n % 4
    # A skewed id distribution: hot ids hit the cache, the long tail misses and evicts.
    uid = int(rng.paretovariate(1.2) * 10) % 4000
    if kind == 0:
        target = f"/api/users/{uid}/orders?limit={rng.randrange(1, 50)}&sort=-created"
    elif kind == 1:
        target = f"/api/search?q=item+{rng.randrange(300)}&page={rng.randrange(1, 9)}"
    else:
        target = f"/api/users/{uid}?fields=name,email,plan&expand=address"
    headers = [
        f"GET {target} HTTP/1.1",
        "Host: shop.example",
        f"User-Agent: client/{n % 17}.{n % 5}",
        "Accept: application/json",
        f"Cookie: session={rng.getrandbits(64):016x}; theme=dark; lang=en",
        f"X-Request-Id: req-{n:08d}",
        "Accept-Encoding: gzip, deflate",
    ]
    return "\r\n".join(headers) + "\r\n\r\n"


def parse_request(raw: str) -> Request:
    head, _, body = raw.partition("\r\n\r\n")
    request_line, *header_lines = head.split("\r\n")
    method, target, version = request_line.split(" ")
    path, _, query = target.partition("?")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    cookies = {}
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            cookies[key] = value
    return {
        "method": method,
        "path": unquote(path),
        "version": version,
        "query": dict(parse_qsl(query)),
        "headers": headers,
        "cookies": cookies,
        "body": body,
        "context": {},
    }


def make_middleware(index: int, inner: Handler) -> Handler:
    """One layer: annotates the request on the way in and the response on the way out."""
    tag = f"mw{index}"

    def middleware(request: Request) -> Response:
        request["context"][tag] = (index, request["headers"].get("x-request-id", ""))
        response = inner(request)
        response["headers"].append((f"X-{tag}", str(index)))
        return response

    return middleware


class UserStore:
    """An LRU cache of computed user records in front of a (simulated) database."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, uid: int) -> dict[str, Any]:
        record = self.cache.get(uid)
        if record is not None:
            self.cache.move_to_end(uid)
            self.hits += 1
            return record
        self.misses += 1
        record = self._load(uid)
        self.cache[uid] = record
        if len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return record

    @staticmethod
    def _load(uid: int) -> dict[str, Any]:
        return {
            "id": uid,
            "name": f"User {uid}",
            "email": f"user{uid}@example.com",
            "plan": ("free", "pro", "team")[uid % 3],
            "address": {"street": f"{uid} Main St", "city": "Springfield", "zip": f"{uid:05d}"},
            "orders": [{"order": uid * 10 + k, "total": (uid * k) % 997} for k in range(uid % 6)],
        }


def build_response(
    request: Request, route: str, match: re.Match[str], store: UserStore
) -> Response:
    """The view: one long function, as real view functions tend to be."""
    query = request["query"]
    headers = request["headers"]
    status = 200
    problems = []
    if request["method"] != "GET":
        status = 405
        problems.append("method not allowed")
    if "application/json" not in headers.get("accept", "*/*"):
        status = 406
        problems.append("only JSON is served")
    page = 1
    if "page" in query:
        try:
            page = int(query["page"])
        except ValueError:
            problems.append("page must be an integer")
            status = 400
    limit = 20
    if "limit" in query:
        try:
            limit = max(1, min(100, int(query["limit"])))
        except ValueError:
            problems.append("limit must be an integer")
            status = 400
    sort_key = query.get("sort", "created")
    descending = sort_key.startswith("-")
    sort_key = sort_key.lstrip("-")
    if sort_key not in ("created", "total", "id"):
        problems.append(f"cannot sort by {sort_key}")
        status = 400
    wanted_fields = query.get("fields", "")
    fields = [f for f in wanted_fields.split(",") if f] if wanted_fields else []
    expand = set(query.get("expand", "").split(",")) - {""}
    language = request["cookies"].get("lang", "en")
    theme = request["cookies"].get("theme", "light")
    session = request["cookies"].get("session")
    authenticated = session is not None and len(session) == 16
    if not authenticated:
        status = 401
        problems.append("not signed in")
    encoding = headers.get("accept-encoding", "")
    compress = "gzip" in encoding
    request_id = headers.get("x-request-id", "-")
    agent = headers.get("user-agent", "")
    is_client = agent.startswith("client/")
    trace_depth = len(request["context"])
    data: Any = None
    if status == 200 and route == "user":
        record = store.get(int(match.group("id")))
        if fields:
            data = {f: record[f] for f in fields if f in record}
        else:
            data = dict(record)
        if "address" in expand:
            data["address"] = dict(record["address"])
    elif status == 200 and route == "orders":
        record = store.get(int(match.group("id")))
        orders = sorted(
            record["orders"], key=lambda o: o["total"] if sort_key == "total" else o["order"]
        )
        if descending:
            orders.reverse()
        data = {"user": record["id"], "orders": orders[:limit], "count": len(orders)}
    elif status == 200 and route == "search":
        term = query.get("q", "")
        start = (page - 1) * limit
        data = {
            "query": term,
            "page": page,
            "results": [{"id": start + k, "title": f"{term} #{start + k}"} for k in range(limit)],
        }
    # The response is assembled here, more than seventy lines into the view.
    meta = {
        "request_id": request_id,
        "language": language,
        "theme": theme,
        "compressed": compress,
        "client": is_client,
        "middlewares": trace_depth,
        "cache": {"hits": store.hits, "misses": store.misses, "size": len(store.cache)},
    }
    body = {"status": status, "data": data, "errors": problems, "meta": meta}
    payload = json.dumps(body, separators=(",", ":"))
    return {
        "status": status,
        "headers": [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("X-Request-Id", request_id),
        ],
        "body": payload,
    }


def make_app(store: UserStore) -> Handler:
    def view(request: Request) -> Response:
        for pattern, route in _ROUTES:
            match = pattern.match(request["path"])
            if match is not None:
                return build_response(request, route, match, store)
        return {"status": 404, "headers": [], "body": "{}"}

    app: Handler = view
    for index in range(MIDDLEWARE_DEPTH):
        app = make_middleware(index, app)
    return app


def serialise(response: Response) -> bytes:
    lines = [f"HTTP/1.1 {response['status']} OK"]
    lines.extend(f"{name}: {value}" for name, value in response["headers"])
    return ("\r\n".join(lines) + "\r\n\r\n" + response["body"]).encode()


def run(scale: float) -> int:
    rng = random.Random(8080)
    store = UserStore(CACHE_SIZE)
    app = make_app(store)
    checksum = 0
    for n in range(max(1, int(REQUESTS_AT_SCALE_1 * scale))):
        request = parse_request(make_raw_request(rng, n))
        wire = serialise(app(request))
        checksum = (checksum * 31 + len(wire)) % (1 << 61)
    return checksum + store.hits
