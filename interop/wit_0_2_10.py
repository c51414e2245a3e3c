"""Writes the WIT copy StarlingMonkey (componentize-js) needs: the vendored 0.2.12
packages relabelled 0.2.10, without `exit-with-code` (added in 0.2.12) and without
the `@unstable` gate on `network-error-code`. StarlingMonkey hooks the fetch event only
for a world exporting `wasi:http/incoming-handler@0.2.10` exactly.

Usage: python3 wit_0_2_10.py VENDORED_DEPS_DIR OUT_DIR
"""

import pathlib
import re
import sys

src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(out / "deps").mkdir(parents=True, exist_ok=True)
for wit in sorted(src.glob("*.wit")):
    text = wit.read_text().replace("0.2.12", "0.2.10")
    text = re.sub(r"\n\s*@since\(version = 0\.2\.10\)\n\s*exit-with-code: func\(status-code: u8\);", "", text)
    text = re.sub(r"\n\s*@unstable\(feature = network-error-code\)", "", text)
    (out / "deps" / wit.name).write_text(text)
(out / "world.wit").write_text(
    "package interop:js;\n\nworld proxy {\n  include wasi:http/proxy@0.2.10;\n}\n"
)
