"""A small in-memory HTTP server that answers the few Elasticsearch APIs Surge's backend uses
(index exists/create/delete, _bulk, _search with bool queries, terms/range aggregations and sorts),
in Elasticsearch's response shapes and with its product header, so the official client accepts it.

Matching is deliberately crude (a word matches when one starts with the other's first four letters,
standing in for stemming and fuzziness): it exercises our request building and response parsing,
not Elasticsearch's relevance.
"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")


def _words(value: Any) -> list[str]:
    if isinstance(value, list):
        return [w for v in value for w in _words(v)]
    return _WORD.findall(str(value or "").lower())


def _similar(token: str, word: str) -> bool:
    return word.startswith(token[:4]) or token.startswith(word[:4])


class FakeElasticsearch:
    def __init__(self) -> None:
        self.indices: dict[str, dict[str, Any]] = {}  # name -> {"body": create body, "docs": {id: source}}
        self.searches: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_HEAD(self):
                self._send(200 if self.path.strip("/").split("?")[0] in fake.indices else 404)

            def do_GET(self):
                self._send(200, {"version": {"number": "9.0.0"}, "tagline": "You Know, for Search"})

            def do_PUT(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[-1] == "_bulk":
                    return self._send(200, fake._bulk(self._body()))
                fake.indices[parts[0]] = {"body": json.loads(self._body() or b"{}"), "docs": {}}
                self._send(200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]})

            def do_DELETE(self):
                name = self.path.split("?")[0].strip("/")
                existed = fake.indices.pop(name, None)
                self._send(200 if existed else 404, {"acknowledged": True})

            def do_POST(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[-1] == "_bulk":
                    return self._send(200, fake._bulk(self._body()))
                if parts[-1] == "_search":
                    body = json.loads(self._body() or b"{}")
                    fake.searches.append(body)
                    return self._send(200, fake._search(parts[0], body))
                self._send(404, {"error": "unsupported"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle and inspection ----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def index_created(self, name: str) -> dict[str, Any]:
        return self.indices[name]["body"]

    def docs(self, name: str) -> dict[str, dict[str, Any]]:
        return self.indices.get(name, {}).get("docs", {})

    @property
    def last_search(self) -> dict[str, Any]:
        return self.searches[-1]

    # --- APIs ------------------------------------------------------------------------------------
    def _bulk(self, raw: bytes) -> dict[str, Any]:
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        items, i = [], 0
        while i < len(lines):
            (op, meta), = lines[i].items()
            docs = self.indices.setdefault(meta["_index"], {"body": {}, "docs": {}})["docs"]
            if op == "delete":
                found = docs.pop(meta["_id"], None) is not None
                items.append({"delete": {"_index": meta["_index"], "_id": meta["_id"], "status": 200 if found else 404,
                                         "result": "deleted" if found else "not_found"}})
                i += 1
            else:
                docs[meta["_id"]] = lines[i + 1]
                items.append({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 201, "result": "created"}})
                i += 2
        return {"took": 1, "errors": False, "items": items}

    def _matches(self, clause: dict[str, Any], doc: dict[str, Any]) -> float | None:
        (kind, spec), = clause.items()
        if kind == "match_all":
            return 1.0
        if kind == "multi_match":
            tokens = _words(spec["query"])
            fields = [f.split("^")[0].split(".")[0] for f in spec["fields"]]
            weights = [float(f.split("^")[1]) if "^" in f else 1.0 for f in spec["fields"]]
            if spec.get("type") == "bool_prefix":
                words = _words(doc.get("name"))
                ok = all(t in words for t in tokens[:-1]) and any(w.startswith(tokens[-1]) for w in words)
                return 1.0 if ok else None
            score = 0.0
            for t in tokens:
                hit = [w for f, w in zip(fields, weights) if any(_similar(t, x) for x in _words(doc.get(f)))]
                if not hit:
                    return None
                score += sum(hit)
            return score
        if kind == "terms":
            (field, values), = spec.items()
            return 1.0 if doc.get(field) in values else None
        if kind == "term":
            (field, value), = spec.items()
            have = doc.get(field)
            return 1.0 if (value in have if isinstance(have, list) else have == value) else None
        if kind == "range":
            (field, bounds), = spec.items()
            v = doc.get(field)
            ops = {"gte": lambda a, b: a >= b, "gt": lambda a, b: a > b, "lt": lambda a, b: a < b,
                   "lte": lambda a, b: a <= b}
            return 1.0 if v is not None and all(ops[o](v, b) for o, b in bounds.items()) else None
        raise ValueError(f"fake does not know {kind}")

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        docs = self.docs(index)
        query = body.get("query", {"match_all": {}})
        scored = []
        for _id, doc in docs.items():
            if "bool" in query:
                scores = [self._matches(c, doc) for c in query["bool"].get("must", [])]
                if any(s is None for s in scores) or any(self._matches(c, doc) is None
                                                         for c in query["bool"].get("filter", [])):
                    continue
                score = sum(scores) or 1.0
            else:
                score = self._matches(query, doc)
                if score is None:
                    continue
            scored.append((_id, score, doc))
        for spec in reversed(body.get("sort", [{"_score": "desc"}])):
            (field, order), = spec.items()
            scored.sort(key=lambda t: t[1] if field == "_score" else t[2].get(field), reverse=order == "desc")
        page = scored[body.get("from", 0): body.get("from", 0) + body.get("size", 10)]
        src = body.get("_source")
        hits = [{"_index": index, "_id": i, "_score": s,
                 "_source": {k: d[k] for k in src if k in d} if isinstance(src, list) else d} for i, s, d in page]
        out: dict[str, Any] = {"took": 1, "timed_out": False,
                               "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                               "hits": {"total": {"value": len(scored), "relation": "eq"},
                                        "max_score": max((s for _, s, _ in scored), default=None), "hits": hits}}
        if body.get("aggs"):
            out["aggregations"] = {name: self._agg(spec, [d for _, _, d in scored]) for name, spec in body["aggs"].items()}
        return out

    @staticmethod
    def _agg(spec: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        (kind, params), = spec.items()
        field = params["field"]
        if kind == "terms":
            counts: dict[Any, int] = {}
            for d in docs:
                values = d.get(field)
                for v in values if isinstance(values, list) else [values]:
                    if v is not None:
                        counts[v] = counts.get(v, 0) + 1
            buckets = []
            for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: params.get("size", 10)]:
                b: dict[str, Any] = {"key": int(v) if isinstance(v, bool) else v, "doc_count": n}
                if isinstance(v, bool):
                    b["key_as_string"] = "true" if v else "false"
                buckets.append(b)
            return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": buckets}
        if kind == "range":
            buckets = []
            for r in params["ranges"]:
                n = sum(1 for d in docs if d.get(field) is not None and ("from" not in r or d[field] >= r["from"])
                        and ("to" not in r or d[field] < r["to"]))
                buckets.append({**r, "doc_count": n})
            return {"buckets": buckets}
        raise ValueError(f"fake does not know aggregation {kind}")
