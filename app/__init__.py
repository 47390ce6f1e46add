"""The serving side: FastAPI app answering POST /candidates (built in the serving issue).

It never imports `training/`: the serving image carries no torch and no implicit.
"""
