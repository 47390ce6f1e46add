"""The Spark engine (`recsys train --engine spark`): MLlib ALS on a Spark cluster or local mode.

session.py starts Spark from TrainSettings, reader.py reads and aggregates interaction sources in
Spark, als.py fits `pyspark.ml.recommendation.ALS` with confidences that mean what they mean for the
implicit engine. Everything after the fit (evaluation, the version folder, publish) is shared, so
publish and the service cannot tell the engines apart. pyspark is imported only here.
"""
