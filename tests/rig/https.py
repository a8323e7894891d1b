"""nginx serving HTTPS for test host names, one certificate per name.

  https = Nginx(directory, address, port, ca)
  https.host("mta-sts.example.test", {"/.well-known/mta-sts.txt": "version: STSv1\\n..."})
  https.host("mta-sts.other.test", files, cert="expired")
  https.get("mta-sts.example.test", "/.well-known/mta-sts.txt") -> (status, headers, body)

nginx runs as `nginx -c CONF -p PREFIX -e ERRORLOG -g 'daemon off;'` with
its configuration, pid file, lock file, logs and temporary directories in
its own directory: nothing of /etc/nginx or /var is used. Adding a host
rewrites the configuration and reloads nginx (SIGHUP); host() returns once
the new configuration answers. A connection with an unknown SNI name (or
none) is refused in the handshake (ssl_reject_handshake).
"""
import http.client
import os
import signal
import socket
import ssl

from .ca import Cert
from .proc import Proc, RigError, wait_for, wait_tcp

CONF = """\
worker_processes 1;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    default_type application/octet-stream;
    types {{
        text/plain txt;
        text/html html;
        application/json json;
    }}
    server_tokens off;
    server {{
        listen {host}:{port} ssl default_server;
        ssl_reject_handshake on;
    }}
{servers}}}
"""

SERVER = """\
    server {{
        listen {host}:{port} ssl;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        location = /.rig-generation {{ default_type text/plain; return 200 "{gen}"; }}
{extra}
    }}
"""


class Host:
    """One HTTPS host name: its document root, certificate and files."""

    def __init__(self, name, root, cert, extra):
        self.name = name
        self.root = root
        self.cert = cert
        self.extra = extra

    def url(self, path="/"):
        return f"https://{self.name}{path}"


class Nginx:
    def __init__(self, directory, host, port, ca):
        self.dir = directory
        self.address = host
        self.port = port
        self.ca = ca
        for d in ("tmp", "www"):
            os.makedirs(os.path.join(directory, d), exist_ok=True)
        os.chmod(directory, 0o755)
        self.conf = os.path.join(directory, "nginx.conf")
        self.hosts = {}
        self.gen = 0
        self.proc = None

    @property
    def endpoint(self):
        from .dns import Endpoint
        return Endpoint(self.address, self.port)

    def host(self, name, files=None, cert="valid", extra=""):
        """Serves files ({url path: str or bytes}) for host name over HTTPS
        with cert (a Cert, or a kind from the test CA made for name).
        `extra` is raw nginx text added to the server block (locations,
        redirects, `return 404;`...). Calling it again for the same name
        replaces the certificate and adds the files."""
        name = name.lower().rstrip(".")
        if not isinstance(cert, Cert):
            cert = self.ca.cert(name, kind=cert)
        root = os.path.join(self.dir, "www", name)
        os.makedirs(root, exist_ok=True)
        for path, content in (files or {}).items():
            self.put(name, path, content, root=root)
        h = Host(name, root, cert, extra)
        self.hosts[name] = h
        self._apply()
        return h

    def put(self, name, path, content, root=None):
        """Writes (or replaces) one file of a host; no reload is needed."""
        root = root or self.hosts[name.lower().rstrip(".")].root
        full = os.path.normpath(os.path.join(root, path.lstrip("/")))
        if not full.startswith(root + os.sep):
            raise RigError(f"path {path!r} leaves the document root")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        for d in _parents(root, os.path.dirname(full)):
            os.chmod(d, 0o755)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(full + ".new", mode) as f:
            f.write(content)
        os.chmod(full + ".new", 0o644)
        os.replace(full + ".new", full)

    def _apply(self):
        self.gen += 1
        servers = "".join(SERVER.format(host=self.address, port=self.port, name=h.name,
                                        cert=h.cert.chain, key=h.cert.key, root=h.root,
                                        gen=self.gen, extra=h.extra)
                          for h in self.hosts.values())
        with open(self.conf + ".new", "w") as f:
            f.write(CONF.format(dir=self.dir, host=self.address, port=self.port, servers=servers))
        os.replace(self.conf + ".new", self.conf)
        if self.proc is None:
            self.proc = Proc("nginx", ["nginx", "-c", self.conf, "-p", self.dir + "/", "-e",
                                       os.path.join(self.dir, "error.log"), "-g", "daemon off;"],
                             os.path.join(self.dir, "nginx.out"), cwd=self.dir)
            wait_tcp(self.address, self.port, 10, self.proc, "nginx")
        else:
            self.proc.check()
            self.proc.signal(signal.SIGHUP)
        # every host answers with the new generation: the reload is done
        for h in self.hosts.values():
            try:
                wait_for(lambda: self._generation(h.name) == str(self.gen), 10,
                         f"nginx serving {h.name} (generation {self.gen})", interval=0.02)
            except RigError as e:
                raise RigError(f"{e}\n{self.errors()}") from None

    def _generation(self, name):
        try:
            status, _, body = self.get(name, "/.rig-generation", verify=False, timeout=1)
        except (OSError, ssl.SSLError, http.client.HTTPException):
            self.proc.check()
            return None
        return body.decode() if status == 200 else None

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def connect(self, name, context=None, timeout=5):
        """A TLS socket to nginx with SNI `name` (None: no SNI), verified
        against the test CA unless another context is given."""
        ctx = context or self.ca.context()
        s = socket.create_connection((self.address, self.port), timeout=timeout)
        try:
            return ctx.wrap_socket(s, server_hostname=name)
        except BaseException:
            s.close()
            raise

    def get(self, name, path, verify=True, timeout=5):
        """GET https://name/path from this nginx (no DNS involved);
        returns (status, headers dict, body bytes)."""
        if verify:
            ctx = self.ca.context()
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection(self.address, self.port, timeout=timeout, context=ctx)
        # SNI and Host: the test name, while the TCP goes to our address
        c.sock = self.connect(name, ctx, timeout)
        try:
            c.request("GET", path, headers={"Host": name})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def check(self):
        if self.proc is not None:
            self.proc.check()


def _parents(root, d):
    out = []
    while d.startswith(root):
        out.append(d)
        d = os.path.dirname(d)
    return out
