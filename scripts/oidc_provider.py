#!/usr/bin/env python3
"""A minimal identity provider for scripts/bench-http: generates an RSA key with the
openssl command, writes an RS256 access token signed with it, and serves the OpenID
discovery document and the JWK Set on 127.0.0.1.

    oidc_provider.py PORT OUT_DIR AUDIENCE

Writes OUT_DIR/oidc-token (the token) and prints "ready" once it listens. Serves until
killed. Only the standard library and openssl are used.
"""
import base64, http.server, json, os, subprocess, sys, time, uuid

port, out, audience = int(sys.argv[1]), sys.argv[2], sys.argv[3]
issuer = "http://127.0.0.1:%d/realms/bench" % port
key = os.path.join(out, "oidc-key.pem")

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", key], check=True, capture_output=True)
modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
jwk = {"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256",
       "n": b64(bytes.fromhex(modulus)), "e": "AQAB"}

now = int(time.time())
header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
payload = b64(json.dumps({"iss": issuer, "aud": audience, "sub": "alice", "iat": now,
                          "exp": now + 3600, "jti": str(uuid.uuid4()),
                          "sid": str(uuid.uuid4())}).encode())
signing_input = ("%s.%s" % (header, payload)).encode()
signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                           check=True, capture_output=True).stdout
with open(os.path.join(out, "oidc-token"), "w") as f:
    f.write("%s.%s" % (signing_input.decode(), b64(signature)))

DOCS = {
    "/realms/bench/.well-known/openid-configuration": {
        "issuer": issuer, "jwks_uri": issuer + "/protocol/openid-connect/certs"},
    "/realms/bench/protocol/openid-connect/certs": {"keys": [jwk]},
}

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        doc = DOCS.get(self.path)
        body = json.dumps(doc if doc is not None else {}).encode()
        self.send_response(200 if doc is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=300")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("ready", flush=True)
server.serve_forever()
