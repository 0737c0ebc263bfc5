"""Re-run every example under GDB and rewrite its expected_output.txt and README block.

For maintainers, after a deliberate change of the output: `python examples/refresh_expected.py`.
tests/test_examples.py then checks the examples against these files under GDB and LLDB.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.test_examples import EXAMPLES, normalize  # noqa: E402


def main():
    for example, script in sorted(EXAMPLES.items()):
        d = HERE / example
        out = subprocess.run(
            ["bash", str(d / script), "gdb"],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE.parent,
        ).stdout
        text = normalize(out) + "\n"
        (d / "expected_output.txt").write_text(text)
        readme = d / "README.md"
        body = readme.read_text()
        marker = "Expected output ([`expected_output.txt`](expected_output.txt)):\n\n```text\n"
        start = body.index(marker) + len(marker)
        end = body.index("```", start)
        readme.write_text(body[:start] + text + body[end:])
        print(f"{example}: {len(text.splitlines())} lines")


if __name__ == "__main__":
    main()
