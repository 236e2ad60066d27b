#!/bin/sh
# Write the file-sync marker into the replicated tree on main (README, "Readiness": file_sync).
#   quorum-dr-file-sync-marker.sh /srv/app/shared/.sync-marker
# One line, `<epoch seconds> <UTC time> <host>`, written to a temporary file in the same directory
# and renamed over the marker, so a replication run never copies half a marker. DR serves the
# replicated copy at the URL `file_sync.url` names; readiness compares its time with now.
set -eu
marker=${1:?usage: $0 MARKER_PATH}
dir=$(dirname -- "$marker")
[ -d "$dir" ] || { echo "$0: $dir is not a directory" >&2; exit 2; }
tmp=$(mktemp "$dir/.sync-marker.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
printf '%s %s %s\n' "$(date -u +%s.%N)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)" > "$tmp"
chmod 0644 "$tmp"
mv -f -- "$tmp" "$marker"
trap - EXIT
