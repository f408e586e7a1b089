"""The paper's protocol: regress the five emergence parameters from architecture features.

arXiv 2508.03616 fits the emergence function to every (model, layer) series and learns
its parameters from the architecture (:mod:`~massdyn.predictors.paper.model`), scores it
under the paper's random row split and leaving a model out
(:mod:`~massdyn.predictors.paper.evaluate`), and turns predicted parameters back into
curves (:func:`~massdyn.predictors.paper.model.predict_architecture`). ``massdyn
train-predictor --protocol paper`` runs it; the default protocol predicts curves
(:mod:`massdyn.predictors.curve`). Both give curves through ``predict_table(arch, steps)``
with the columns ``ratio, ratio_lo, ratio_hi``.
"""
