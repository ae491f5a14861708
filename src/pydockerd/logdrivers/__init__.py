"""Container log drivers: conmon's spool -> the driver's format (see docs/ARCHITECTURE.md,
"Logging"). options: names, options and daemon defaults; message: the Message and
LogDriver shapes; spool: conmon's k8s-file records -> Messages, the cursor; files:
rotating files; jsonfile / local: the two file formats; pipeline: the per-container
tailers; reader: `docker logs` across rotated and compressed files."""
