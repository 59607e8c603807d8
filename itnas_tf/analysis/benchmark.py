"""`NB201Table`: NAS-Bench-201 accuracies by cell, read from a CSV export or the official NATS-Bench files."""

import csv
import pathlib

from itnas_tf.genotypes import GenotypeError, NB201Genotype

DATASETS = ("cifar10", "cifar100", "imagenet16_120")
# The NATS-Bench API's names for the same datasets (the CIFAR-10 test accuracy is under "cifar10").
NATS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16_120": "ImageNet16-120"}


class BenchmarkError(ValueError):
    """A benchmark table that lacks what an analysis needs, or a cell it does not hold."""


def column(dataset):
    """The CSV column of the 200-epoch test accuracy on `dataset` (as `../shared/data/nb201`)."""
    return f"{dataset}_test_acc_200ep"


def edge_ops(arch_str):
    """The six ops of an NB201 cell string, in edge order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)."""
    return [op for op, _, _ in NB201Genotype.from_string(arch_str).edges()]


class NB201Table:
    """200-epoch test accuracies (mean over the benchmark's seeds) of every NB201 cell.

    Args:
        accuracies: `{arch_str: {dataset: accuracy}}`, datasets from `DATASETS`.
        source: where the table came from, for messages.
    """

    def __init__(self, accuracies, source="table"):
        if not accuracies:
            raise BenchmarkError(f"{source} holds no cells.")
        self.accuracies = accuracies
        self.source = source
        self.datasets = tuple(d for d in DATASETS if all(d in row for row in accuracies.values()))

    @classmethod
    def from_csv(cls, path):
        """A CSV with an `arch_str` column and `<dataset>_test_acc_200ep` columns (at least one)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise BenchmarkError(f"Benchmark table {path} does not exist; pass --benchmark=PATH to a NAS-Bench-201 CSV.")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            present = [d for d in DATASETS if column(d) in header]
            if "arch_str" not in header or not present:
                raise BenchmarkError(
                    f"{path} lacks the columns an NB201 lookup needs: `arch_str` and at least one of "
                    f"{[column(d) for d in DATASETS]} (its header: {header[:8]}{'...' if len(header) > 8 else ''})."
                )
            rows = {r["arch_str"]: {d: float(r[column(d)]) for d in present} for r in reader}
        return cls(rows, source=str(path))

    @classmethod
    def from_nats_bench(cls, path):
        """The official NATS-Bench topology files (`NATS-tss-v1_0-3ffb9-simple`), through `nats_bench`."""
        try:
            import nats_bench
        except ImportError:
            raise BenchmarkError("Reading the official NATS-Bench files needs `pip install nats_bench`; "
                                 "or pass a CSV export with --benchmark.") from None
        api = nats_bench.create(str(path), "tss", fast_mode=True, verbose=False)
        rows = {}
        for index in range(len(api)):
            rows[api.arch(index)] = {
                d: float(api.get_more_info(index, NATS_NAMES[d], hp="200", is_random=False)["test-accuracy"])
                for d in DATASETS
            }
        return cls(rows, source=str(path))

    @classmethod
    def load(cls, path):
        """A CSV file, or a NATS-Bench folder/archive."""
        return cls.from_csv(path) if str(path).endswith(".csv") else cls.from_nats_bench(path)

    def _dataset(self, dataset):
        if dataset not in self.datasets:
            raise BenchmarkError(f"{self.source} has no accuracies on {dataset!r}; it has {list(self.datasets)}.")
        return dataset

    def accuracy(self, arch_str, dataset="cifar10"):
        """The test accuracy of one cell (an NB201 genotype string)."""
        self._dataset(dataset)
        try:
            canonical = str(NB201Genotype.from_ops(edge_ops(arch_str)))
        except GenotypeError as e:
            raise BenchmarkError(f"{arch_str!r} is not an NB201 cell: {e}") from None
        if canonical not in self.accuracies:
            raise BenchmarkError(f"The cell {arch_str} is not in {self.source}: is it an NB201 cell (5 ops, 6 edges)?")
        return self.accuracies[canonical][dataset]

    def optimum(self, dataset="cifar10"):
        """`(arch_str, accuracy)` of the best cell on `dataset`."""
        self._dataset(dataset)
        return max(((a, row[dataset]) for a, row in self.accuracies.items()), key=lambda item: item[1])

    def best_with_op(self, dataset="cifar10"):
        """`{edge index: {op: best accuracy of any cell with that op on that edge}}` (paper A.7, Eq. 9)."""
        self._dataset(dataset)
        best = {}
        for arch, row in self.accuracies.items():
            for edge, op in enumerate(edge_ops(arch)):
                slot = best.setdefault(edge, {})
                slot[op] = max(slot.get(op, float("-inf")), row[dataset])
        return best
