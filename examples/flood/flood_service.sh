# OSCAR service script of the flood model: one job per uploaded scenario archive.
# Input ($INPUT_FILE_PATH): a .tar holding model.py (steps/model.py) and one or more scenario_T<T>.npz
# written by steps/prepare.py. Output ($TMP_OUTPUT_DIR): flood_T<T>.npz and flood_T<T>.json per scenario.
set -eu
work=$(mktemp -d)
tar -xf "$INPUT_FILE_PATH" -C "$work"
found=0
for scenario in "$work"/scenario_T*.npz; do
  [ -e "$scenario" ] || continue
  python3 "$work/model.py" "$scenario" --out-dir "$TMP_OUTPUT_DIR"
  found=$((found + 1))
done
rm -rf "$work"
if [ "$found" -eq 0 ]; then
  echo "no scenario_T*.npz in $(basename "$INPUT_FILE_PATH"): tar model.py with the prepare step's output" >&2
  exit 2
fi
