#!/bin/sh
# --vdeliver-setup for ../shared/bench/postfix_bench.py: the LMTP daemon's lmtp.cf without Sieve (no
# virtual_home_maps, no scripts), the baseline of postfix_bench_sieve_setup.sh.
#   postfix_bench.py ... --vdeliver-setup "sh bench/postfix_bench_plain_setup.sh {root} {mailroot} {vlmtp_port} {vmailbox}"
# $1 root  $2 mailroot  $3 port  $4 vmailbox
printf 'virtual_mailbox_base = %s\nvirtual_mailbox_maps = texthash:%s\nlmtp_listen = inet:127.0.0.1:%s\nlmtp_pid_file = /run/vdeliver-bench-lmtpd.pid\n' "$2" "$4" "$3" > $1/lmtp.cf; chmod 644 $1/lmtp.cf
