"""Apache Otava's change-point analysis (``otava.analysis`` and ``otava.change_point_divisive``),
from the apache-otava 0.8.0 wheel on PyPI (Apache License 2.0: LICENSE and NOTICE beside this file).

Why it is here rather than in the lock: apache-otava 0.8.0 pins ``numpy==2.2.0.*`` and
``scipy<1.17`` on Python 3.11 (the lock has numpy 2.4.6 and scipy 1.17.1, which its analysis runs
under unchanged) and requires BigQuery, Postgres and Slack clients the analysis never imports;
installing it would break ``pip check`` or move the runtimes' numpy. MongoDB's
signal-processing-algorithms needs ``numpy<2``. The only change to the files is their import path
(``otava.`` became ``harness.third_party.otava.``); ``UPSTREAM`` lists each file's sha256 as the
wheel's RECORD gives it, and a test checks the files against it. To update: replace the files from
a newer wheel, redo the import rewrite, update ``UPSTREAM``.

Used through harness.compare.change_points only."""

UPSTREAM_WHEEL = "apache_otava-0.8.0-py3-none-any.whl"
UPSTREAM_WHEEL_SHA256 = "9a1156c8e017c50d1a852f88ad5f56f6166c9e0810650218de5d23049fca9726"
IMPORT_REWRITE = ("from otava.", "from harness.third_party.otava.")
