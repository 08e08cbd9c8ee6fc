#!/bin/sh
# oscar-plugins wrapper v2
# Installed by oscar-plugins around a service's script. OSCAR ignores a script's exit code; this
# wrapper records it with the script's own output, keeps each job's outputs under its own folder,
# fetches staged inputs, and uploads outputs itself when the job carries an upload policy (so they never
# pass through faas-supervisor's in-memory response). The user's script is embedded below unchanged.
# Every process costs (about 1 ms of CPU each, curl about 9): a short job forks as few as it can.
op_work=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/op.$$" && echo "/tmp/op.$$"; })
cat > "$op_work/user.sh" <<'__OSCAR_PLUGINS_USER_SCRIPT_END__'
@@USER_SCRIPT@@
__OSCAR_PLUGINS_USER_SCRIPT_END__
# The service's output filters (one per line), applied to paths inside the job's folder (read by the
# shell itself: no process when there are none).
op_prefixes=""
while IFS= read -r op_p; do [ -n "$op_p" ] && op_prefixes="$op_prefixes$op_p
"; done <<'__OSCAR_PLUGINS_PREFIX_END__'
@@PREFIXES@@
__OSCAR_PLUGINS_PREFIX_END__
op_suffixes=""
while IFS= read -r op_p; do [ -n "$op_p" ] && op_suffixes="$op_suffixes$op_p
"; done <<'__OSCAR_PLUGINS_SUFFIX_END__'
@@SUFFIXES@@
__OSCAR_PLUGINS_SUFFIX_END__
op_out="${TMP_OUTPUT_DIR:-$op_work/out}"
if [ -n "${JOB_UUID:-}" ]; then op_job_out="$op_out/$JOB_UUID"; else op_job_out="$op_out"; fi
op_k=""
op_curl_retry="--retry 5 --retry-all-errors"

op_curl() { # curl with the retry options this curl knows: one it does not know makes it exit with 2
  curl $op_curl_retry "$@"; op_cc=$?
  if [ "$op_cc" -eq 2 ] && [ "$op_curl_retry" != "--retry 5" ]; then
    op_curl_retry="--retry 5"; curl $op_curl_retry "$@"; op_cc=$?
  fi
  return "$op_cc"
}

op_fetch() { # url dest
  if command -v curl >/dev/null 2>&1; then op_curl -fsS $op_k -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q ${op_k:+--no-check-certificate} -O "$2" "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import shutil,ssl,sys,urllib.request as u
c=ssl._create_unverified_context() if sys.argv[3] else None
shutil.copyfileobj(u.urlopen(sys.argv[1],context=c),open(sys.argv[2],"wb"))' "$1" "$2" "$op_k"
  else echo "oscar-plugins: the image has no curl, wget or python3 to download this input (inputs up to" \
         "1 MiB a job reach it through the supervisor, larger ones by URL): add one of them to the image" >&2
       return 127; fi
}

op_post() { # file key: one browser-based (POST policy) upload
  op_f="$1"; op_key="$2"
  if command -v curl >/dev/null 2>&1; then
    set --
    while IFS= read -r op_kv; do [ -n "$op_kv" ] && set -- "$@" --form-string "$op_kv"; done < "$op_work/fields"
    rm -f "$op_work/up"; ln -s "$op_f" "$op_work/up" 2>/dev/null || cp "$op_f" "$op_work/up"
    op_code=$(op_curl -sS $op_k --connect-timeout 30 -o "$op_work/answer" -w '%{http_code}' "$@" \
      --form-string "key=$op_key" -F "file=@$op_work/up;filename=up" "$op_up_url") || return 1
    case "$op_code" in 2??) return 0 ;; *) cat "$op_work/answer" >&2; return 1 ;; esac
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import http.client,os,ssl,sys,urllib.parse,uuid
url,key,path,fields,insecure=sys.argv[1:6]
pairs=[l.rstrip("\n").split("=",1) for l in open(fields) if "=" in l]+[["key",key]]
b=uuid.uuid4().hex
head="".join("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"%(b,k,v) for k,v in pairs)
head=(head+"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"up\"\r\nContent-Type: application/octet-stream\r\n\r\n"%b).encode()
tail=("\r\n--%s--\r\n"%b).encode()
u=urllib.parse.urlsplit(url)
if u.scheme=="https":
  c=http.client.HTTPSConnection(u.hostname,u.port,timeout=600,context=ssl._create_unverified_context() if insecure else None)
else:
  c=http.client.HTTPConnection(u.hostname,u.port,timeout=600)
c.putrequest("POST",u.path or "/")
c.putheader("Content-Type","multipart/form-data; boundary="+b)
c.putheader("Content-Length",str(len(head)+os.path.getsize(path)+len(tail)))
c.endheaders();c.send(head)
with open(path,"rb") as f:
  while True:
    d=f.read(1<<20)
    if not d: break
    c.send(d)
c.send(tail);r=c.getresponse();body=r.read()
sys.exit(0 if 200<=r.status<300 else (sys.stderr.write(body.decode("utf-8","replace")) or 1))' \
      "$op_up_url" "$op_key" "$op_f" "$op_work/fields" "$op_k"
  else return 127; fi
}

op_send_all() { # every file listed in $op_work/files, then the status, in ONE curl run (a curl costs
  # more than the rest of a short job). 0: all sent; 1: refused (the answer is shown); 2: this curl cannot
  # (older than 7.76: no --fail-with-body) or a transfer broke: the caller sends them one by one, with
  # curl's retries on every error, as before.
  command -v curl >/dev/null 2>&1 || return 2
  set --
  op_i=0
  op_last=""
  while :; do
    if IFS= read -r f; then f=${f#./}; op_f="$op_job_out/$f"; op_key="$op_up_prefix$JOB_UUID/$f"
    elif [ -z "$op_last" ]; then op_last=1; op_f="$op_work/status"; op_key="$op_up_prefix$JOB_UUID/.oscar-plugins-status"
    else break; fi
    case "$op_f" in  # curl's -F reads ';' and '"' in a file name: such paths go through a link
      *[!A-Za-z0-9_./-]*) op_i=$((op_i + 1)); ln -s "$op_f" "$op_work/up$op_i" 2>/dev/null || cp "$op_f" "$op_work/up$op_i"
                          op_f="$op_work/up$op_i" ;;
    esac
    [ "$#" -gt 0 ] && set -- "$@" --next
    set -- "$@" -sS $op_k --retry 5 --retry-connrefused --connect-timeout 30 --fail-with-body \
      -o "$op_work/answer" -w '%{http_code}\n'
    while IFS= read -r op_kv <&3; do [ -n "$op_kv" ] && set -- "$@" --form-string "$op_kv"; done 3< "$op_work/fields"
    set -- "$@" --form-string "key=$op_key" -F "file=@$op_f;filename=up" "$op_up_url"
  done < "$op_work/files"
  op_codes=$(curl --fail-early "$@"); op_cc=$?
  case "$op_cc" in
    0) for op_code in $op_codes; do case "$op_code" in 2??) ;; *) return 1 ;; esac; done; return 0 ;;
    22) cat "$op_work/answer" >&2; return 1 ;;
    *) return 2 ;;
  esac
}

op_send_each() { # the same, one curl (or python3) run per file, status last
  while IFS= read -r f; do
    f=${f#./}
    op_post "$op_job_out/$f" "$op_up_prefix$JOB_UUID/$f" || return 1
  done < "$op_work/files"
  op_post "$op_work/status" "$op_up_prefix$JOB_UUID/.oscar-plugins-status"
}

op_has_prefix() { # path: passes the prefix filters (none = all)
  op_n=0
  while IFS= read -r op_p; do
    [ -n "$op_p" ] || continue; op_n=1
    case "$1" in "$op_p"*) return 0 ;; esac
  done < "$op_work/prefix"
  [ "$op_n" -eq 0 ]
}

op_has_suffix() { # path: passes the suffix filters (none = all)
  op_n=0
  while IFS= read -r op_p; do
    [ -n "$op_p" ] || continue; op_n=1
    case "$1" in *"$op_p") return 0 ;; esac
  done < "$op_work/suffix"
  [ "$op_n" -eq 0 ]
}

op_status=0
op_up_url=""
op_drop=""
if [ -n "${INPUT_FILE_PATH:-}" ] && [ -f "$INPUT_FILE_PATH" ] && \
   [ "$(head -c 26 "$INPUT_FILE_PATH" 2>/dev/null)" = "#oscar-plugins-manifest v1" ]; then
  op_in="${TMP_INPUT_DIR:-$op_work}/oscar-inputs"
  op_first=""
  op_named=""
  op_payload=""
  # Inline contents are cut out by awk first, at C speed: the shell's read takes a byte at a time (about
  # a second per MiB of base64). A cut-out content becomes "@N", which no base64 text starts with.
  op_blob="$op_work/blobs"
  mkdir -p "$op_job_out" "$op_in" "$op_blob"
  # Short text (the upload policy's fields, a small text payload or input) is decoded by awk itself and
  # written where the shell would write it ("=": done): one base64 run less each. Anything else, as before.
  if ! { command -v awk >/dev/null 2>&1 && awk -v d="$op_blob" -v dir="$op_in" -v fields="$op_work/fields" '
      function text(s,   n, pad, i, v, acc, bits, b, p, out) {
        n = length(s)
        if (n == 0 || n % 4 || n > 8192) return ""
        pad = substr(s, n - 1) == "==" ? 2 : substr(s, n) == "=" ? 1 : 0
        for (i = 1; i <= n - pad; i++) {
          v = index("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", substr(s, i, 1)) - 1
          if (v < 0) return ""
          acc = acc * 64 + v; bits += 6
          if (bits >= 8) {
            bits -= 8; p = bits == 0 ? 1 : bits == 2 ? 4 : 16; b = int(acc / p); acc -= b * p
            if (b == 0 || b > 126) return ""
            out = out sprintf("%c", b)
          }
        }
        return out
      }
      function put(file, t) { printf "%s", t > file; close(file) }
      $1 == "data" && !seen["/" $2]++ && (t = text($3)) != "" { put(dir "/" $2, t); print "data", $2, "="; next }
      $1 == "payload" && !seen["payload"]++ && (t = text($2)) != "" { put(dir "/payload", t); print "payload", "="; next }
      $1 == "upload" && (t = text($4)) != "" { put(fields, t); print $1, $2, $3, "@"; next }
      $1 == "data" { n++; f = d "/" n; print $3 > f; close(f); print "data", $2, "@" n; next }
      $1 == "payload" { n++; f = d "/" n; print $2 > f; close(f); print "payload", "@" n; next }
      { print }' "$INPUT_FILE_PATH" > "$op_work/manifest"; }; then
    cp "$INPUT_FILE_PATH" "$op_work/manifest"
  fi
  op_decode() { case "$1" in @*) base64 -d < "$op_blob/${1#@}" ;; *) printf '%s' "$1" | base64 -d ;; esac; }
  while IFS=' ' read -r op_kind op_a op_b op_c; do
    case "$op_kind" in
      insecure) op_k="-k" ;;
      payload) op_payload="$op_in/payload"; [ "$op_a" = = ] || op_decode "$op_a" > "$op_payload" || op_status=1 ;;
      payload-url) op_payload="$op_in/payload"
                   op_fetch "$op_a" "$op_payload" || { echo "oscar-plugins: could not fetch the payload" >&2; op_status=1; } ;;
      upload) op_up_url="$op_a"; op_up_prefix="$op_b"
              [ "$op_c" = @ ] || printf '%s' "$op_c" | base64 -d > "$op_work/fields" 2>/dev/null || op_up_url="" ;;
      url) op_fetch "$op_b" "$op_in/$op_a" || { echo "oscar-plugins: could not fetch input $op_a" >&2; op_status=1; } ;;
      data) [ "$op_b" = = ] || op_decode "$op_b" > "$op_in/$op_a" || op_status=1 ;;
      empty) : > "$op_in/$op_a" ;;
      env) op_val=$(printf '%s' "$op_b" | base64 -d); export "$op_a=$op_val" ;;
      *) continue ;;
    esac
    case "$op_kind" in url|data|empty) op_named=1; [ -z "$op_first" ] && op_first="$op_in/$op_a" ;; esac
  done < "$op_work/manifest" 2> "$op_work/prepare"
  [ -s "$op_work/prepare" ] && cat "$op_work/prepare" >&2
  # A payload alone is the job's input file, as a plain job body would be; named inputs share a folder.
  if [ -n "$op_named" ] || [ -z "$op_payload" ]; then export OSCAR_INPUTS_DIR="$op_in"; fi
  INPUT_FILE_PATH="${op_first:-${op_payload:-$op_in}}"
  export INPUT_FILE_PATH
else
  mkdir -p "$op_job_out"
fi

# The script's output goes to the job's log as it comes, and to a file the client reads back.
if [ "$op_status" -eq 0 ]; then
  if command -v tee >/dev/null 2>&1; then
    { TMP_OUTPUT_DIR="$op_job_out" /bin/sh "$op_work/user.sh"; echo "$?" > "$op_work/rc"; } 2>&1 | tee "$op_work/log"
  else
    TMP_OUTPUT_DIR="$op_job_out" /bin/sh "$op_work/user.sh" > "$op_work/log" 2>&1
    echo "$?" > "$op_work/rc"
    cat "$op_work/log"
  fi
  op_rc=""
  [ -s "$op_work/rc" ] && read -r op_rc < "$op_work/rc"
  op_rc=${op_rc:-137}
else
  # The script did not run: the job's log is why (the client shows it).
  { cat "$op_work/prepare" 2>/dev/null
    echo "oscar-plugins: the job's inputs could not be prepared, so the script did not run"; } > "$op_work/log"
  cat "$op_work/log"
  op_rc=86
fi
# On a line of its own, after a newline the client removes again (a sync run's text comes back exact).
printf '\noscar-plugins: script exited with code %s\n' "$op_rc"

if [ -n "${JOB_UUID:-}" ]; then
  # The service's prefix/suffix filters, as OSCAR would apply them to an unwrapped job's outputs.
  if [ -n "$op_prefixes$op_suffixes" ]; then
    printf '%s' "$op_prefixes" > "$op_work/prefix"
    printf '%s' "$op_suffixes" > "$op_work/suffix"
    (cd "$op_job_out" && find . -type f | while IFS= read -r f; do
       f=${f#./}
       { op_has_prefix "$f" && op_has_suffix "$f"; } || rm -f "$f"
     done)
  fi
  [ -s "$op_work/log" ] && tail -c 8388608 "$op_work/log" > "$op_job_out/.oscar-plugins-log" 2>/dev/null
  # The job's files (its outputs and log), listed once for the status and the uploads.
  (cd "$op_job_out" && find . -type f ! -name .oscar-plugins-status) > "$op_work/files"
  {
    echo "exit=$op_rc"
    # The end of the script's own output, for failure reports.
    if [ -s "$op_work/log" ]; then
      op_tail=$(tail -c 16384 "$op_work/log" 2>/dev/null | base64 2>/dev/null | tr -d '\n')
      [ -n "$op_tail" ] && printf 'log %s\n' "$op_tail"
    fi
    # Small outputs also ride inline (base64) so a client collects such a job with one GET.
    # (Few processes per file: a job's own cost matters when thousands of them are short.)
    (cd "$op_job_out" && op_inline=0 && set -f && while IFS= read -r f; do
       f=${f#./}
       case "${f##*/}" in .oscar-plugins-log) continue ;; esac
       if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum < "$f"); s=${s%% *}; else s=-; fi
       n=$(wc -c < "$f"); n=$((n + 0))
       printf 'file %s %s %s\n' "$n" "$s" "$f"
       if [ "$n" -gt 0 ] && [ "$n" -le 16384 ] && [ $((op_inline + n)) -le 49152 ] && [ "$s" != - ] && \
          op_b64=$(base64 < "$f" 2>/dev/null) && [ -n "$op_b64" ]; then
         # base64 wraps its lines: the shell joins them (fields split on newlines, joined with no separator)
         IFS='
'
         set -- $op_b64
         IFS=''
         printf 'inline %s\n' "$*"
         unset IFS
         op_inline=$((op_inline + n))
       fi
     done < "$op_work/files")
  } > "$op_work/status"
  # Upload the outputs here, status last, when the job brought a policy; else faas-supervisor uploads them
  # (and then also holds them in memory for its response: keep them well under the memory limit).
  op_sent=1
  if [ -n "$op_up_url" ]; then
    op_send_all; op_sent=$?
    [ "$op_sent" -eq 2 ] && { op_send_each; op_sent=$?; }
    [ "$op_sent" -eq 0 ] || echo "oscar-plugins: direct upload failed; leaving the outputs to the supervisor" >&2
  fi
  if [ "$op_sent" -eq 0 ]; then
    op_drop="$op_job_out"
  else
    mv "$op_work/status" "$op_job_out/.oscar-plugins-status"
  fi
elif [ "$op_rc" -ne 0 ]; then
  # Synchronous run: drop outputs so the response body is the log, which carries the exit code.
  rm -rf "$op_job_out"/* "$op_job_out"/.[!.]* 2>/dev/null
fi
rm -rf "$op_work" ${op_drop:+"$op_drop"}
exit "$op_rc"
