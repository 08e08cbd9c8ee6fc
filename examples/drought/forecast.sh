# OSCAR service script: train the surrogate forecaster on the indices of all tiles and forecast the next
# month (steps/forecast.py does the work).
# Inputs: forecast.py and every indices_tile_NN.npz, as the files of one job or together in one .tar.
# Outputs ($TMP_OUTPUT_DIR): forecast.npz and forecast.json.
set -eu
dir="${OSCAR_INPUTS_DIR:-$(dirname "$INPUT_FILE_PATH")}"
case "$INPUT_FILE_PATH" in
  *.tar) dir=$(mktemp -d); tar -xf "$INPUT_FILE_PATH" -C "$dir" ;;
esac
if [ ! -f "$dir/forecast.py" ]; then
  echo "no forecast.py among the job's inputs: send examples/drought/steps/forecast.py with the indices" >&2
  exit 2
fi
python3 "$dir/forecast.py" "$dir"/indices_*.npz --out-dir "$TMP_OUTPUT_DIR"
