"""A local HTTPS server for the metadata refresh tests: serves the files of a
directory over TLS with the certificate and key it is given, plus
/slow (answers after 30 s) and /redirect-to-http (a 302 to an http:// URL).
Prints the port it listens on (127.0.0.1, chosen by the system), then serves
until killed.

usage: metadata_server.py DIRECTORY CERT KEY
"""

import http.server
import os
import ssl
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(30)
        if self.path == "/redirect-to-http":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/metadata.xml")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


def main():
    directory, cert, key = sys.argv[1:4]
    os.chdir(directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
