"""A test certificate authority made with openssl at run time.

  ca = TestCA(directory)
  ca.cafile                        the CA certificate (PEM) clients trust
  ca.cert("mx.example.test")       a server certificate signed by the CA
  ca.cert("a.test", "b.test", kind="expired")

Kinds of certificate:
  valid          signed by the CA, valid from yesterday for 30 days
  expired        signed by the CA, expired yesterday
  not-yet-valid  signed by the CA, valid from tomorrow
  wrong-name     signed by the CA, valid, for "wrong-name.invalid" instead
                 of the names asked for
  self-signed    valid dates and the right names, signed by its own key

Keys are ECDSA P-256 by default (key="rsa" for RSA 2048). Every call with
the same names, kind and key returns the same Cert.

The CA uses its own openssl configuration file (never the system's).
"""
import hashlib
import os
import re
import ssl
import subprocess
import time

from .proc import RigError, run

KINDS = ("valid", "expired", "not-yet-valid", "wrong-name", "self-signed")
WRONG_NAME = "wrong-name.invalid"

OPENSSL_CNF = """\
[ ca ]
default_ca = rig_ca

[ rig_ca ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
default_md = sha256
policy = rig_policy
unique_subject = no
copy_extensions = none
email_in_dn = no

[ rig_policy ]
commonName = supplied

[ req ]
distinguished_name = rig_dn
prompt = no
utf8 = yes

[ rig_dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _stamp(t):
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


class Cert:
    """A certificate and its key on disk.

    cert      the leaf certificate (PEM)
    key       its private key (PEM, unencrypted)
    chain     leaf then CA certificate (PEM), for servers that send both
    names     the DNS names in the certificate
    asked     the names it was made for (differs for wrong-name)
    kind      one of KINDS
    """

    def __init__(self, directory, names, asked, kind, cafile):
        self.dir = directory
        self.cert = os.path.join(directory, "cert.pem")
        self.key = os.path.join(directory, "key.pem")
        self.chain = os.path.join(directory, "chain.pem")
        self.names = list(names)
        self.asked = list(asked)
        self.kind = kind
        self.cafile = cafile

    def pem(self):
        with open(self.cert) as f:
            return f.read()

    def der(self):
        return ssl.PEM_cert_to_DER_cert(self.pem())

    def spki_der(self):
        p = subprocess.run(["openssl", "x509", "-in", self.cert, "-noout", "-pubkey"],
                           capture_output=True, check=True, timeout=30)
        q = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=p.stdout,
                           capture_output=True, check=True, timeout=30)
        return q.stdout

    def tlsa(self, usage=3, selector=1, mtype=1):
        """TLSA rdata text for this certificate ("3 1 1 <hex>")."""
        data = self.der() if selector == 0 else self.spki_der()
        if mtype == 1:
            data = hashlib.sha256(data).digest()
        elif mtype == 2:
            data = hashlib.sha512(data).digest()
        return f"{usage} {selector} {mtype} {data.hex()}"

    def __repr__(self):
        return f"Cert({self.kind}, {self.names})"


class TestCA:
    """A CA made on first use in `directory`."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, name="postern rig test CA"):
        self.dir = directory
        os.makedirs(os.path.join(directory, "issued"), exist_ok=True)
        self.cnf = os.path.join(directory, "openssl.cnf")
        with open(self.cnf, "w") as f:
            f.write(OPENSSL_CNF.format(dir=directory))
        open(os.path.join(directory, "index.txt"), "w").close()
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        self.cafile = os.path.join(directory, "ca.pem")
        self.cakey = os.path.join(directory, "ca.key")
        self._genkey(self.cakey, "ec")
        self._openssl("req", "-new", "-x509", "-key", self.cakey, "-out", self.cafile,
                      "-subj", f"/CN={name}", "-days", "3650", "-extensions", "v3_ca")
        self._certs = {}
        self._n = 0

    def _openssl(self, *args, env=None):
        e = dict(os.environ, OPENSSL_CONF=self.cnf)
        return run(["openssl", *args, *(["-config", self.cnf] if args[0] in ("req", "ca") else [])],
                   env=e)

    @staticmethod
    def _genkey(path, key):
        if key == "ec":
            args = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        elif key == "rsa":
            args = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        else:
            raise ValueError(f"key {key!r}: want 'ec' or 'rsa'")
        run(["openssl", "genpkey", *args, "-out", path])
        os.chmod(path, 0o644)  # servers that drop privileges read it too

    def cert(self, *names, kind="valid", key="ec"):
        """A certificate for names (the first is the CN) of the given kind."""
        if not names:
            raise ValueError("cert() needs at least one name")
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: want one of {KINDS}")
        ck = (tuple(names), kind, key)
        if ck in self._certs:
            return self._certs[ck]
        self._n += 1
        slug = re.sub(r"[^a-z0-9.-]", "_", names[0].lower())
        d = os.path.join(self.dir, f"{self._n:02d}-{kind}-{slug}")
        os.makedirs(d)
        inside = [WRONG_NAME] if kind == "wrong-name" else list(names)
        c = Cert(d, inside, names, kind, self.cafile)
        self._genkey(c.key, key)
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("[ req ]\ndistinguished_name = rig_dn\nprompt = no\n[ rig_dn ]\nCN = unused\n"
                    "[ leaf ]\nbasicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature, keyEncipherment\n"
                    "extendedKeyUsage = serverAuth, clientAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    f"subjectAltName = {', '.join('DNS:' + n for n in inside)}\n")
        subj = f"/CN={inside[0]}"
        now = time.time()
        if kind == "self-signed":
            run(["openssl", "req", "-new", "-x509", "-key", c.key, "-out", c.cert, "-subj", subj,
                 "-days", "30", "-config", ext, "-extensions", "leaf"],
                env=dict(os.environ, OPENSSL_CONF=ext))
        else:
            start, end = {"valid": (now - 86400, now + 30 * 86400),
                          "wrong-name": (now - 86400, now + 30 * 86400),
                          "expired": (now - 30 * 86400, now - 86400),
                          "not-yet-valid": (now + 86400, now + 30 * 86400)}[kind]
            csr = os.path.join(d, "req.csr")
            self._openssl("req", "-new", "-key", c.key, "-out", csr, "-subj", subj)
            self._openssl("ca", "-batch", "-notext", "-in", csr, "-out", c.cert,
                          "-startdate", _stamp(start), "-enddate", _stamp(end),
                          "-extfile", ext, "-extensions", "leaf")
        with open(c.chain, "w") as f:
            f.write(c.pem())
            if kind != "self-signed":
                with open(self.cafile) as ca:
                    f.write(ca.read())
        self._certs[ck] = c
        return c

    def context(self, check_hostname=True):
        """A client ssl.SSLContext trusting only this CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cafile)
        ctx.check_hostname = check_hostname
        return ctx


def check_kind(kind):
    if kind not in KINDS:
        raise RigError(f"certificate kind {kind!r}: want one of {KINDS}")
    return kind
