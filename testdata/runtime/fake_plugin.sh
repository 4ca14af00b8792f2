#!/bin/bash
# A fake CNI plugin for the lib/runtime and `cnibox exec` tests. Installed
# under several names; its file name is its plugin type. Everything goes
# through $FAKE_DIR:
#   calls                       one line per call: "<type> <CMD> <CNI_CONTAINERID> <CNI_IFNAME>"
#   <type>.<CMD>.stdin          stdin of the latest <CMD> call (numbered copies: .stdin.<n>)
#   <type>.<CMD>.env            CNI_* and FAKE_* variables of that call, sorted
#   <type>.<CMD>.out            printed on stdout if present (ADD default: {})
#   <type>.<CMD>.stderr         printed on stderr if present
#   <type>.<CMD>.fail           if present: exit with status 1 (or <type>.<CMD>.exit)
#                               after printing it on stdout (it may be empty)
set -u
type=$(basename "$0")
cmd=${CNI_COMMAND:-}
dir=${FAKE_DIR:?FAKE_DIR not set}
stdin=$(cat)
n=0
if [ -f "$dir/calls" ]; then n=$(wc -l < "$dir/calls"); fi
echo "$type $cmd ${CNI_CONTAINERID:-} ${CNI_IFNAME:-}" >> "$dir/calls"
printf '%s' "$stdin" > "$dir/$type.$cmd.stdin"
printf '%s' "$stdin" > "$dir/$type.$cmd.stdin.$n"
env | grep -E '^(CNI_|FAKE_)' | sort > "$dir/$type.$cmd.env"
if [ -f "$dir/$type.$cmd.stderr" ]; then cat "$dir/$type.$cmd.stderr" >&2; fi
if [ -f "$dir/$type.$cmd.fail" ]; then
  cat "$dir/$type.$cmd.fail"
  if [ -f "$dir/$type.$cmd.exit" ]; then exit "$(cat "$dir/$type.$cmd.exit")"; fi
  exit 1
fi
if [ -f "$dir/$type.$cmd.out" ]; then
  cat "$dir/$type.$cmd.out"
elif [ "$cmd" = ADD ]; then
  printf '{}'
fi
exit 0
