import os

import matplotlib

matplotlib.use("Agg")  # no display in tests
os.environ.setdefault("COURSE_THREADS", "2")
