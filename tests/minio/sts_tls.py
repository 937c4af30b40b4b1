"""A TLS front for MinIO's STS on the test bed.

    python3 sts_tls.py HOST PORT CERT KEY UPSTREAM

object_store (and so Kask) exchanges a web-identity token for credentials only over HTTPS, as
AWS's STS is; the bed's MinIO speaks plain HTTP. This forwards each request, unchanged, to
UPSTREAM (MinIO's http:// address) and returns MinIO's answer. AssumeRoleWithWebIdentity is not
signed, so forwarding under another Host is fine. Standard library only.
"""

import http.server
import ssl
import sys
import urllib.error
import urllib.request

HOST, PORT, CERT, KEY, UPSTREAM = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


class Forward(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def log_request(self, code="-", size="-"):
        # Without the query, which holds the caller's token.
        self.log_message('"%s %s" %s', self.command, self.path.split("?")[0], code)

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        req = urllib.request.Request(UPSTREAM + self.path, data=body, method=self.command)
        if self.headers.get("Content-Type"):
            req.add_header("Content-Type", self.headers["Content-Type"])
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type")
        except OSError as e:
            status, data, ctype = 502, str(e).encode(), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype or "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = http.server.ThreadingHTTPServer((HOST, PORT), Forward)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
