"""A stand-in for the Hugging Face Hub's HTTP API, serving one local directory as the model
repo named on the command line: the revision info and ranged file downloads, with the
headers hf-hub reads. Prints the port it listens on.

    python fake_hub.py ORG/NAME DIR
"""

import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO, ROOT = sys.argv[1], sys.argv[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = sorted(f for f in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, f)))


class Hub(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        info = f"/api/models/{REPO}/revision/main"
        resolve = f"/{REPO}/resolve/main/"
        if self.path == info:
            body = json.dumps({"sha": COMMIT, "siblings": [{"rfilename": f} for f in FILES]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith(resolve) and self.path[len(resolve):] in FILES:
            data = open(os.path.join(ROOT, self.path[len(resolve):]), "rb").read()
            start, end = 0, len(data) - 1
            if "Range" in self.headers:
                a, b = self.headers["Range"].removeprefix("bytes=").split("-")
                start, end = int(a), int(b) if b else len(data) - 1
            part = data[start : end + 1]
            self.send_response(206 if "Range" in self.headers else 200)
            self.send_header("Content-Length", str(len(part)))
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.end_headers()
            self.wfile.write(part)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
# The test's port closes stdin when it ends: stop then.
sys.stdin.read()
