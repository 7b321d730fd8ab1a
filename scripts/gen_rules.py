#!/usr/bin/env python3
"""Writes COUNT rules into OUT_DIR: variations of the example rules (examples/rules), in
their proportions of kinds, for the many-rules benchmark (scripts/bench-rules.sh).

Rule i varies example i mod 29 (its copy i div 29): the id gets a suffix; a check's `when`
gains a conjunct that keeps a different twelfth of the rows' ids in each copy (so copies
are distinct rules that still read the same columns); a stateful rule's window (`within`,
`window`) grows by a minute a copy. Tests are dropped. Nothing is tuned to the data.

Usage: scripts/gen_rules.py COUNT OUT_DIR
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vary(text: str, copy: int) -> str:
    text = text.split("\ntests:")[0].rstrip() + "\n"
    if copy == 0:
        return text
    text = re.sub(r"^id: (.+)$", lambda m: f"id: {m.group(1)}-v{copy}", text, count=1, flags=re.M)
    if re.search(r"^check:", text, flags=re.M):
        keep = f"coalesce(after.id, before.id) % 12 <> {copy % 12}"
        if re.search(r"^  when: ", text, flags=re.M):
            text = re.sub(r'^  when: "(.*)"$', lambda m: f'  when: "({m.group(1)}) AND {keep}"', text, count=1, flags=re.M)
        else:
            text = re.sub(r"^(  tables: .*)$", lambda m: f'{m.group(1)}\n  when: "{keep}"', text, count=1, flags=re.M)
    else:
        text = re.sub(
            r"^(  (?:within|window)): (\d+)m$", lambda m: f"{m.group(1)}: {int(m.group(2)) + copy}m", text, flags=re.M
        )
    return text


def main() -> None:
    count, out = int(sys.argv[1]), Path(sys.argv[2])
    examples = sorted((ROOT / "examples" / "rules").glob("*.yaml"))
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        example = examples[i % len(examples)]
        copy = i // len(examples)
        (out / f"{example.stem}-{copy}.yaml").write_text(vary(example.read_text(), copy))


if __name__ == "__main__":
    main()
