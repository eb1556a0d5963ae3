"""curvegan's REST service (v1) over gan_engine."""
