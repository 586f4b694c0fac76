#!/bin/sh
# --vdeliver-setup for ../shared/bench/postfix_bench.py: each bench mailbox gets a home under the
# base (virtual_home_maps) with a 50-rule Roundcube-style script in the ManageSieve layout.
#   postfix_bench.py ... --vdeliver-setup "sh bench/postfix_bench_sieve_setup.sh {root} {mailroot} {vlmtp_port} {vmailbox}"
# $1 root  $2 mailroot  $3 port  $4 vmailbox
root=$1; mailroot=$2
printf 'virtual_mailbox_base = %s\nvirtual_mailbox_maps = texthash:%s\nlmtp_listen = inet:127.0.0.1:%s\nlmtp_pid_file = /run/vdeliver-bench-lmtpd.pid\nvirtual_home_maps = texthash:%s/homes.map\n' "$2" "$4" "$3" "$1" > $root/lmtp.cf
script=$root/roundcube.sieve
{ echo 'require ["fileinto"];'; for n in $(seq 1 50); do printf '# rule:[rule %d]\nif header :contains "subject" "no such word %d" { fileinto "Folder%d"; stop; }\n' $n $n $n; done; } > $script
: > $root/homes.map
mkdir -p $mailroot/homes
for addr in $(seq -f "user%g@vdeliver-lmtp.bench.test" 0 9); do
  h=$mailroot/homes/$addr; mkdir -p $h/sieve; cp $script $h/sieve/roundcube.sieve; ln -sfn sieve/roundcube.sieve $h/.dovecot.sieve
  printf '%s homes/%s/\n' "$addr" "$addr" >> $root/homes.map
done
chown -R vmail:vmail $mailroot/homes; chmod -R go-rwx $mailroot/homes; chmod 644 $root/homes.map $root/lmtp.cf
