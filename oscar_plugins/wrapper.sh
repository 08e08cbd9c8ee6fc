#!/bin/sh
# oscar-plugins wrapper v1
# Installed by oscar-plugins around a service's script. OSCAR ignores a script's exit code; this
# wrapper records it, keeps each job's outputs under its own folder, and fetches staged inputs.
# The user's script is embedded below unchanged and run with /bin/sh.
op_work=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/op.$$" && echo "/tmp/op.$$"; })
cat > "$op_work/user.sh" <<'__OSCAR_PLUGINS_USER_SCRIPT_END__'
@@USER_SCRIPT@@
__OSCAR_PLUGINS_USER_SCRIPT_END__
op_out="${TMP_OUTPUT_DIR:-$op_work/out}"
if [ -n "${JOB_UUID:-}" ]; then op_job_out="$op_out/$JOB_UUID"; else op_job_out="$op_out"; fi
mkdir -p "$op_job_out"

op_fetch() { # url dest
  if command -v curl >/dev/null 2>&1; then curl -fsS --retry 5 --retry-all-errors -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import shutil,sys,urllib.request as u; shutil.copyfileobj(u.urlopen(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"
  else echo "oscar-plugins: no curl, wget or python3 in the image to fetch staged inputs" >&2; return 127; fi
}

op_status=0
if [ -n "${INPUT_FILE_PATH:-}" ] && [ -f "$INPUT_FILE_PATH" ] && \
   [ "$(head -c 26 "$INPUT_FILE_PATH" 2>/dev/null)" = "#oscar-plugins-manifest v1" ]; then
  op_in="${TMP_INPUT_DIR:-$op_work}/oscar-inputs"
  mkdir -p "$op_in"
  op_first=""
  while IFS=' ' read -r op_kind op_a op_b; do
    case "$op_kind" in
      url) op_fetch "$op_b" "$op_in/$op_a" || { echo "oscar-plugins: could not fetch input $op_a" >&2; op_status=1; } ;;
      data) printf '%s' "$op_b" | base64 -d > "$op_in/$op_a" || op_status=1 ;;
      empty) : > "$op_in/$op_a" ;;
      env) op_val=$(printf '%s' "$op_b" | base64 -d); export "$op_a=$op_val" ;;
      *) continue ;;
    esac
    case "$op_kind" in url|data|empty) [ -z "$op_first" ] && op_first="$op_in/$op_a" ;; esac
  done < "$INPUT_FILE_PATH"
  export OSCAR_INPUTS_DIR="$op_in"
  INPUT_FILE_PATH="${op_first:-$op_in}"
  export INPUT_FILE_PATH
fi

if [ "$op_status" -eq 0 ]; then
  TMP_OUTPUT_DIR="$op_job_out" /bin/sh "$op_work/user.sh"
  op_rc=$?
else
  op_rc=86
fi
echo "oscar-plugins: script exited with code $op_rc"

if [ -n "${JOB_UUID:-}" ]; then
  {
    echo "exit=$op_rc"
    # Small outputs also ride inline (base64) so a client collects such a job with one GET.
    # (Few processes per file: a job's own cost matters when thousands of them are short.)
    (cd "$op_job_out" && op_inline=0 && find . -type f ! -name .oscar-plugins-status | while IFS= read -r f; do
       f=${f#./}
       if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum < "$f"); s=${s%% *}; else s=-; fi
       n=$(wc -c < "$f"); n=$((n + 0))
       printf 'file %s %s %s\n' "$n" "$s" "$f"
       if [ "$n" -gt 0 ] && [ "$n" -le 16384 ] && [ $((op_inline + n)) -le 49152 ] && [ "$s" != - ] && \
          op_b64=$(base64 < "$f" 2>/dev/null | tr -d '\n') && [ -n "$op_b64" ]; then
         printf 'inline %s\n' "$op_b64"
         op_inline=$((op_inline + n))
       fi
     done)
  } > "$op_work/status"
  mv "$op_work/status" "$op_job_out/.oscar-plugins-status"
elif [ "$op_rc" -ne 0 ]; then
  # Synchronous run: drop outputs so the response body is the log, which carries the exit code.
  rm -rf "$op_job_out"/* "$op_job_out"/.[!.]* 2>/dev/null
fi
rm -rf "$op_work"
exit "$op_rc"
