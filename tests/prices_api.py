"""The Azure Retail Prices API on loopback, for the cost tests (issue 18): it answers the recorded
Container Apps items (tests/toolkit/data/retail_prices_container_apps.json, the API's item shape, USD and
EUR) as the API does: the `$filter` (`serviceName`, `armRegionName`, `priceType` eq) and `currencyCode`
applied, pages of PAGE_SIZE items (the API's are 1000) with `Count` and an absolute `NextPageLink`
(`$skip`) that is null on the last page, `BillingCurrency`, `CustomerEntityId`, `CustomerEntityType`."""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

RECORDED = Path(__file__).parent / "toolkit" / "data" / "retail_prices_container_apps.json"
PAGE_SIZE = 7
FILTER_FIELDS = {"serviceName": "serviceName", "armRegionName": "armRegionName", "priceType": "type"}


class PricesAPI:
    def __init__(self) -> None:
        self.items = json.loads(RECORDED.read_text())
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                api.requests.append(self.path)
                status, body = api.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/retail/prices"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str) -> tuple[int, dict]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        code = query.get("currencyCode", "USD").strip("'")
        if code not in self.items:
            return 400, {"Error": {"Code": "InvalidCurrency", "Message": f"Invalid currency code {code}"}}
        found = self.items[code]
        for field, value in re.findall(r"(\w+) eq '([^']*)'", query.get("$filter", "")):
            found = [i for i in found if i.get(FILTER_FIELDS.get(field, field)) == value]
        skip = int(query.get("$skip", "0"))
        page = found[skip:skip + PAGE_SIZE]
        more = skip + PAGE_SIZE < len(found)
        next_link = None
        if more:
            next_link = self.url + "?" + urlencode({**query, "$skip": str(skip + PAGE_SIZE)})
        return 200, {"BillingCurrency": code, "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
                     "Items": page, "NextPageLink": next_link, "Count": len(page)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
