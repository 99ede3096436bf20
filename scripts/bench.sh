#!/usr/bin/env bash
# make bench: every benchmark of ticketd in one run, each against a baseline
# measured in the same run on the same machine, then one summary table.
#   intake    SMTP (1, 8, 32 clients; 1 KB and 100 KB) vs a bare go-smtp
#             server storing each mail with one INSERT; IMAP from Dovecot vs
#             SMTP for the same mails; memory with 25 MB mails
#   triage    tickets through the Inngest dev server (rules engine, fake LLM)
#             vs the engines called directly
#   delivery  the outbox sender into a local SMTP sink vs a bare SMTP client
#   pipeline  new mail through Postfix to In-Progress with both mails at the
#             relay, at steady offered loads, on the cluster (inngest start,
#             three replicas) vs one replica on the dev server (bench/pipeline;
#             needs root for Postfix)
# Raw reports go to $BENCH_OUT (default artifacts/bench); the summary is
# printed last. Figures are ratios because the machine is shared and noisy.
# BENCH_INTAKE_ARGS (e.g. "-duration 10s"), BENCH_TRIAGE_N,
# BENCH_DELIVERY_N and BENCH_PIPELINE_ARGS (e.g. "-rates 10,50 -duration
# 30s") size the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-artifacts/bench}
mkdir -p "$out"

echo "== intake (scripts/bench-intake.sh)" >&2
scripts/bench-intake.sh ${BENCH_INTAKE_ARGS:-} | tee "$out/intake.txt"
# The load generator, the servers and PostgreSQL share the machine's cores;
# the 8-client 1 KB row again on one core shows how the ratio moves with them.
rm -f "$out/intake-1core.txt"
if [ "$(nproc)" -gt 1 ] && command -v taskset >/dev/null; then
	echo "== intake on one core (taskset -c 0 scripts/bench-intake.sh -only smtp -clients 8 -sizes 1)" >&2
	taskset -c 0 scripts/bench-intake.sh ${BENCH_INTAKE_ARGS:-} -only smtp -clients 8 -sizes 1 | tee "$out/intake-1core.txt"
fi
echo "== triage (go test -bench Triage ./workflows)" >&2
go test ./workflows -run '^$' -bench Triage -benchtime ${BENCH_TRIAGE_N:-200}x -timeout 30m | tee "$out/triage.txt"
echo "== delivery (go test -bench SenderDelivery ./outbound)" >&2
go test ./outbound -run '^$' -bench SenderDelivery -benchtime ${BENCH_DELIVERY_N:-3000}x -timeout 30m | tee "$out/delivery.txt"
echo "== pipeline (go run ./bench/pipeline)" >&2
rm -f "$out/pipeline.txt"
if [ "$(id -u)" = 0 ]; then
	go run ./bench/pipeline ${BENCH_PIPELINE_ARGS:-} | tee "$out/pipeline.txt"
else
	echo "pipeline: skipped (Postfix, the cluster's MX, runs only as root)" >&2
fi

# metric FILE BENCH-NAME-REGEX UNIT: the value reported before UNIT.
metric() {
	awk -v re="$2" -v unit="$3" '$1 ~ re { for (i = 2; i <= NF; i++) if ($i == unit) { print $(i-1); exit } }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

{
	echo
	echo "ticketd benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, $(go env GOVERSION); baselines measured in the same run"
	printf '%-40s | %-26s | %-40s | %s\n' "what" "ticketd" "baseline (same run)" "ratio"
	printf '%s\n' "-----------------------------------------+----------------------------+------------------------------------------+------"
	# Intake rows: clients size | ticketd rate p50 p99 | receiver ... | baseline rate p50 p99 | ...
	intake_rows() {
		awk -F'|' -v note="$2" 'NF >= 5 && /^[0-9]+ +[0-9]+KB/ {
			split($1, a, " "); split($2, t, " "); split($4, b, " ")
			printf "%-40s | %-26s | %-40s | %.2f\n", "SMTP intake " a[2] ", " a[1] " client(s)" note, t[1] " mails/s p99 " t[3], b[1] " mails/s (go-smtp + one INSERT)", t[1] / b[1]
		}' "$1"
	}
	intake_rows "$out/intake.txt" ""
	if [ -f "$out/intake-1core.txt" ]; then
		intake_rows "$out/intake-1core.txt" ", 1 core"
	fi
	imap=$(awk '/^IMAP +[0-9]+ mails in/ { for (i = 1; i <= NF; i++) if ($i == "mails/s") print $(i-1) }' "$out/intake.txt" | head -1)
	smtp1=$(awk '/^SMTP +the same mails over 1 connection/ { for (i = 1; i <= NF; i++) if ($i ~ /^mails\/s/) { print $(i-1); exit } }' "$out/intake.txt")
	printf '%-40s | %-26s | %-40s | %s\n' "IMAP intake from Dovecot" "${imap:--} mails/s" "${smtp1:--} mails/s (same mails by SMTP, 1 conn)" "$(ratio "$imap" "$smtp1")"
	for engine in rules llm; do
		via=$(metric "$out/triage.txt" "devserver-$engine-[0-9]+\$" tickets/min)
		p99=$(metric "$out/triage.txt" "devserver-$engine-[0-9]+\$" p99-ms)
		direct=$(metric "$out/triage.txt" "$engine-direct" tickets/min)
		printf '%-40s | %-26s | %-40s | %s\n' "triage via Inngest dev server ($engine)" "${via:--}/min p99 ${p99:--}ms" "${direct:--}/min (engine called directly)" "$(ratio "$via" "$direct")"
	done
	bare=$(metric "$out/delivery.txt" "baseline/bare-client" mails/s)
	for w in $(awk '$1 ~ /SenderDelivery\/.*worker/ { sub(/-[0-9]+$/, "", $1); print $1 }' "$out/delivery.txt"); do
		rate=$(metric "$out/delivery.txt" "^$w" mails/s)
		printf '%-40s | %-26s | %-40s | %s\n' "delivery, outbox ${w##*/}" "${rate:--} mails/s" "${bare:--} mails/s (bare go-smtp client)" "$(ratio "$rate" "$bare")"
	done
	# Pipeline rows: shape | offered | tickets/s | p50 | p99 | done, the
	# cluster's against the baseline's at the same offered load.
	if [ -f "$out/pipeline.txt" ]; then
		awk -F'|' '
			/^dev server, 1 replica/ { gsub(/ /, "", $2); base[$2] = $3 + 0 }
			/^inngest start,/ {
				off = $2; gsub(/ /, "", off); rate = $3 + 0; p50 = $4; p99 = $5; gsub(/ /, "", p50); gsub(/ /, "", p99)
				b = base[off]
				printf "%-40s | %-26s | %-40s | %s\n", "pipeline, " off " offered (cluster)", sprintf("%.1f tickets/s p50 %s p99 %s", rate, p50, p99),
					sprintf("%.1f tickets/s (1 replica, dev server)", b), (b > 0 ? sprintf("%.2f", rate / b) : "-")
			}' "$out/pipeline.txt"
	fi
	grep -E '^cluster at .*goal' "$out/pipeline.txt" 2>/dev/null || true
	awk '/^CPU per mail/ { p = 1 } /^peak RSS/ { p = 0 } p && NF' "$out/intake.txt"
	grep -E '^peak RSS|^goal' "$out/intake.txt" || true
	grep -E '^Memory:|goal below 200 MB' "$out/intake.txt" || true
} | tee "$out/summary.txt"
