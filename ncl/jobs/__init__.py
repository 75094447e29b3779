"""The jobs behind the entry points (evaluate.py, extract.py, train.py, mine_pairs.py): the only
place that reads a Hydra config. Each job instantiates the parts its config names (`_target_`
nodes) and hands typed objects to the library below; no other package sees a `DictConfig`."""
