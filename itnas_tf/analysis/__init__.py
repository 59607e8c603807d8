"""The paper's analyses of finished searches: benchmark lookup, ranking consistency, trajectories,
zero-cost baselines, Grad-CAM (`python -m itnas_tf.analyze`)."""

from itnas_tf.analysis.benchmark import DATASETS, BenchmarkError, NB201Table
from itnas_tf.analysis.discretization import discretization_accuracy
from itnas_tf.analysis.gradcam import candidate_cams, plot_cams
from itnas_tf.analysis.ranking import kendall_per_edge, mean_tau
from itnas_tf.analysis.report import analyze
from itnas_tf.analysis.runs import AnalysisError, Run, load_run, load_runs
from itnas_tf.analysis.trajectory import accuracy_trajectories, plot_trajectories
from itnas_tf.analysis.zero_cost import PROXIES, zero_cost_importance
