# OSCAR service script of the event-driven drought workflow: a new month of climate data landed in the
# input bucket (OSCAR's bucket trigger started this job with it). Recompute SPI/SPEI of every tile and
# the next month's forecast (steps/indices.py, steps/forecast.py, shipped inside the upload).
# Input: climate_YYYY-MM.tar with region.json, tile_NN.npz, indices.py and forecast.py.
# Outputs ($TMP_OUTPUT_DIR): indices_tile_NN.npz, summary_tile_NN.json, forecast.npz, forecast.json and
# region.json: what the warning-map DAG needs.
set -eu
dir=$(mktemp -d)
tar -xf "$INPUT_FILE_PATH" -C "$dir"
for f in region.json indices.py forecast.py; do
  if [ ! -f "$dir/$f" ]; then
    echo "no $f in $(basename "$INPUT_FILE_PATH"): upload a tar made by examples/drought/run_events.py" >&2
    exit 2
  fi
done
python3 "$dir/indices.py" "$dir"/tile_*.npz --scale "${SPI_SCALE:-3}" --out-dir "$TMP_OUTPUT_DIR"
python3 "$dir/forecast.py" "$TMP_OUTPUT_DIR"/indices_*.npz --out-dir "$TMP_OUTPUT_DIR"
cp "$dir/region.json" "$TMP_OUTPUT_DIR/region.json"
