#!/usr/bin/env bash
# Refactorings must not change what fundguard finds. Usage:
#   scripts/same-findings.sh OLD_BINARY NEW_BINARY
# Simulates the shop once in every CDC format, backtests the example rules on each log with
# both binaries, and compares the findings and dead letters byte for byte; then checks
# that both binaries accept or refuse every configuration the documentation shows alike.
# Build OLD_BINARY from the commit before the change (e.g. in a `git worktree`).
set -euo pipefail
old=$1 new=$2
work=$(mktemp -d); [ -n "${KEEP:-}" ] && echo "work: $work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cd "$(dirname "$0")/.."

"$old" simulate --out "$work/log" --orders 3000 --seed 11 --incident-rate 0.02 > /dev/null
status=0
for format in debezium canal maxwell; do
    for side in old new; do
        bin=$old; [ "$side" = new ] && bin=$new
        "$bin" backtest --rules examples/rules --input "$work/log/$format.jsonl" --format "$format" \
            --schema "$work/log/schema.yaml" --findings "$work/$format.$side.jsonl" \
            --dead-letter "$work/$format.$side.dead.jsonl" > "$work/$format.$side.report" 2>&1 || true
    done
    for kind in jsonl dead.jsonl; do
        for side in old new; do # `detected_at` is the wall clock; a missing file is an empty one
            sed -E 's/"detected_at":"[^"]*"//' "$work/$format.$side.$kind" 2> /dev/null > "$work/$side.cmp" || true
        done
        if cmp -s "$work/old.cmp" "$work/new.cmp"; then
            echo "$format $kind: identical but for detected_at ($(wc -l < "$work/new.cmp") lines)"
        else
            echo "$format $kind: DIFFERENT"; status=1
        fi
    done
done

# Every YAML block in the docs, read as a configuration: the same verdict and the same
# problems (with their lines and columns) from both binaries.
n=0
for doc in docs/*.md; do
    awk '/^```yaml$/{on=1; n++; next} /^```$/{on=0} on{print > (dir "/" n ".yaml")}' dir="$work" n=0 "$doc" 2>/dev/null || true
    for config in "$work"/[0-9]*.yaml; do
        [ -e "$config" ] || continue
        # Fragments (a `sources:` entry, a `notify:` block) become whole files.
        grep -q '^rules:' "$config" || sed -i '1i rules: [rules]' "$config"
        n=$((n + 1))
        a=$("$old" validate --config "$config" examples/rules 2>&1 | sed "s#$work#W#g"; echo "rc=$?")
        b=$("$new" validate --config "$config" examples/rules 2>&1 | sed "s#$work#W#g"; echo "rc=$?")
        if [ "$a" != "$b" ]; then echo "config from $doc: DIFFERENT"; diff <(echo "$a") <(echo "$b") || true; status=1; fi
        rm "$config"
    done
done
echo "$n documented configurations: $([ $status = 0 ] && echo same verdicts || echo see above)"
exit $status
