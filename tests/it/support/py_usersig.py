"""Cross-checks our UserSig against the official Python package tls-sig-api-v2==1.1.

  py_usersig.py gen SDKAPPID KEY IDENTIFIER EXPIRE TIME [USERBUF]  -> prints the official sig
  py_usersig.py check SIG SDKAPPID KEY                          -> prints JSON: decoded fields and
                                                                   whether the official HMAC matches

The package has no time argument and no verify function: `gen` patches the module's `time`
name to fix the clock (as the spec says), and `check` decodes with the package's own
base64_decode_url and recomputes TLS.sig with its own (private) HMAC routine.
"""
import json
import sys
import types
import zlib

import TLSSigAPIv2 as official


def gen(sdkappid, key, identifier, expire, now, userbuf=None):
    official.time = types.SimpleNamespace(time=lambda: int(now))
    api = official.TLSSigAPIv2(int(sdkappid), key)
    if userbuf is None:
        return api.gen_sig(identifier, int(expire))
    return api.gen_sig_with_userbuf(identifier, int(expire), userbuf.encode())


def check(sig, sdkappid, key):
    doc = json.loads(zlib.decompress(official.base64_decode_url(sig.encode())))
    api = official.TLSSigAPIv2(int(sdkappid), key)
    want = api._TLSSigAPIv2__hmacsha256(
        doc["TLS.identifier"], doc["TLS.time"], doc["TLS.expire"], doc.get("TLS.userbuf")
    ).decode()
    doc["hmac_ok"] = want == doc["TLS.sig"] and int(doc["TLS.sdkappid"]) == int(sdkappid)
    return json.dumps(doc)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        print(gen(*sys.argv[2:]))
    elif sys.argv[1] == "check":
        print(check(*sys.argv[2:]))
    else:
        sys.exit("usage: py_usersig.py gen|check ...")
