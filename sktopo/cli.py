"""The ``sktopo`` command.

``sktopo profile`` turns a network and its data into a per-layer table of
topology and geometry (persistence features, PH dimension, TwoNN and, for ReLU
networks, the rank profile), written as a tidy CSV or Parquet file with PNG plots.
``sktopo manifolds`` computes the persistence features of built-in synthetic
manifolds: a quick check that everything is installed and works.

Errors: every mistake prints one line ``sktopo: error: ...`` saying what to do and exits
with status 2 (a wrong argument, found before any computation) or 1 (a failure while
running); ``--debug`` shows the Python traceback instead. The output folder and every input
(model, data, layers, checkpoint) are checked before anything is trained, computed or changed
in the folder; a run writes its files into a hidden staging folder and moves them into place
once they are all written, so the folder shows the previous result set or the new one,
complete, whatever ends the run (see ``_OutputSet``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import numpy as np
import pandas as pd

__all__ = ["main"]

_USAGE, _RUNTIME = 2, 1
_COUNT_SUFFIXES = ("n_bars", "n_infinite", "n_features", "n_inputs", "n_points", "units")


class CLIError(Exception):
    """A mistake reported as one line ``sktopo: error: ...``; ``code`` is the exit status."""

    def __init__(self, message, code=_USAGE):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and a CLIError (exit status 2)."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')", _USAGE)


def _log(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- argument types


def _int_at_least(low, what=""):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer{what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}{what}, got {value}")
        return value
    return parse


def _add_homology_dimensions(parser, help):
    """``--homology-dimensions Q [Q ...]``, default 0 1: the same option in every subcommand."""
    parser.add_argument("--homology-dimensions", type=_int_at_least(0), nargs="+",
                        default=[0, 1], metavar="Q", help=help)


def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError(
            "0 is not a number of jobs: use a positive count, or -1 for every core")
    return value


# ---------------------------------------------------------------- outputs
#
# The output folder must show a command's result set (profile.csv, ranks.csv, profile.png, ...)
# complete or not at all, whatever ends the run: an error, Ctrl-C or a kill at any moment. So
#   1. the run first finishes an earlier run's interrupted commit, or discards its staging
#      folder if that run died before committing (``_recover``);
#   2. it checks the folder and every input, changing nothing there;
#   3. it writes its whole set into a hidden staging folder, .sktopo-staging-<pid>-<random>;
#   4. it commits: the staging folder's journal (COMMIT: the moves and removals to make) is
#      written under a temporary name and renamed, so it exists only when the set is complete;
#      from then on the new set is decided, and any run that finds the journal finishes it;
#   5. it moves the files into place (renames), the main table last, and removes the staging.
# A kill before step 4 leaves the previous files as they were; a kill during step 5 leaves the
# journal, and the next sktopo run on the folder ends the moves before it does anything else.
# Other files in the folder are never touched.

_STAGING = ".sktopo-staging-"
_STAGING_NAME = re.compile(r"^\.sktopo-staging-(\d+)-")  # its run's PID
_JOURNAL = "COMMIT"
_LOCK = "lock"
# temporary files of sktopo versions that wrote straight into --out: .profile.partial-<pid>.csv
_LEGACY_PARTIAL = re.compile(r"^\.(?:(?:profile|ranks|manifolds)\.partial|sktopo-write-test)"
                             r"-(\d+)(?:\.(?:csv|parquet|png))?$")


class _OutputSet:
    """The --out folder of one run, written through a staging folder (see above).

    ``names`` are the files the run may write, the main table first: ``--overwrite`` replaces
    these and no other file. Use it as a context manager around the whole run: write each file
    to ``path(name)``, then ``commit(names written)``. Leaving the block before the commit
    (an error, Ctrl-C) discards the staging folder and leaves --out as it was.
    """

    def __init__(self, args, names):
        self.args = args
        self.out = Path(args.out)
        self.names = list(names)
        self.staging = None
        self.decided = self.committed = False
        self._lock = None
        self._created = []  # folders this run made: --out and missing parents, deepest first

    def __enter__(self):
        _check_out_path(self.out, self.names)
        try:
            if _recover(self.out):
                _log(self.args, f"finished moving the results of an interrupted run into "
                                f"{str(self.out)!r}")
            _check_out_content(self.out, self.names, self.args.overwrite)
            self._created = [folder for folder in (self.out, *self.out.parents)
                             if not folder.exists()]
            self.out.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=self.out))
            lock = self.staging / _LOCK
            lock.write_bytes(b"")  # also the test that --out can be written to
            self._lock = _hold_lock(lock)
        except OSError as error:
            self._discard()
            raise CLIError(f"cannot write to --out {str(self.out)!r}: {error.strerror or error}; "
                           "choose a folder you can write to.") from None
        return self

    def path(self, name):
        """Where the run writes ``name``: in the staging folder, until the commit."""
        return self.staging / name

    def commit(self, written):
        """Install the files ``written`` in --out and remove this run's other names there."""
        main = self.names[0]
        steps = [["move", name] for name in written if name != main]
        steps += [["remove", name] for name in self.names if name not in written]
        steps += [["move", main]] if main in written else []  # the main table last: see above
        journal = self.staging / _JOURNAL
        temporary = journal.with_name(f"{_JOURNAL}.partial")
        temporary.write_text(json.dumps(steps))
        with _sigint_deferred():  # a few renames: Ctrl-C waits for them
            os.replace(temporary, journal)
            self.decided = True
            _finish_commit(self.out, self.staging)
            self.committed = True

    def __exit__(self, kind, error, traceback):
        if self.decided:  # if not committed, the journal stays: the next run finishes the moves
            _release(self._lock)
        else:
            self._discard()
        if isinstance(error, KeyboardInterrupt):
            error.sktopo_note = self._note()
        return False

    def _discard(self):
        _release(self._lock)
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
        for folder in self._created:  # folders this run made (--out a/b: a too) go, if empty
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:  # not empty: another process wrote there meanwhile
                break

    def _note(self):
        out = repr(str(self.out))
        if self.committed:
            return f"the results in {out} are complete."
        if self.decided:
            return (f"the results were being moved into {out}; the next sktopo run on that "
                    "folder completes them.")
        return f"nothing in {out} was changed."


def _check_out_path(out, names):
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a file; give a folder (it is created if "
                       "missing).")
    folders = [name for name in names if (out / name).is_dir()]
    if folders:
        raise CLIError(f"--out {str(out)!r} holds a folder named {folders[0]!r}, where this "
                       "command writes a file; rename it or choose another folder.")


def _check_out_content(out, names, overwrite):
    if not out.is_dir():
        return
    present = sorted(p.name for p in out.iterdir())
    running = [_STAGING_NAME.match(name) for name in present]
    running = [match.group(1) for match in running if match]
    if running:  # the stagings of dead runs are gone (_recover): this one's run lives
        pid = running[0]
        raise CLIError(f"another sktopo run (process {pid}) is writing into --out {str(out)!r}; "
                       "wait for it to end, or choose another folder.")
    if present and not overwrite:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise CLIError(
            f"--out folder {str(out)!r} is not empty ({shown}); pass --overwrite to replace the "
            f"files this run writes there ({', '.join(names)}), or choose another folder.")


def _finish_commit(out, staging):
    """Make the moves and removals of ``staging``'s journal; they may have been made already."""
    for action, name in json.loads((staging / _JOURNAL).read_text()):
        with contextlib.suppress(FileNotFoundError):  # done before an interruption
            if action == "move":
                _move(staging / name, out / name)
            else:
                (out / name).unlink()
    # the journal before the rest: a staging folder without one is only discarded
    (staging / _JOURNAL).unlink()
    shutil.rmtree(staging)


def _move(source, target):
    os.replace(source, target)


def _recover(out):
    """Finish or discard what dead runs left in ``out``; return whether a commit was finished."""
    if not out.is_dir():
        return False
    finished = False
    stagings = [p for p in out.iterdir() if _STAGING_NAME.match(p.name) and p.is_dir()]
    for staging in sorted(stagings, key=lambda p: p.stat().st_mtime):
        claim = _claim(staging)
        if claim is None:
            continue
        with claim:
            if (staging / _JOURNAL).exists():  # the run died while moving a complete set in
                _finish_commit(out, staging)
                finished = True
            else:  # it died before its set was complete: its files are dropped
                shutil.rmtree(staging)
    for path in out.iterdir():
        legacy = _LEGACY_PARTIAL.match(path.name)
        if legacy and path.is_file() and not _pid_alive(int(legacy.group(1))):
            path.unlink()
    return finished


def _hold_lock(path):
    """Open ``path`` and hold an exclusive lock on it for as long as this process runs.

    The kernel drops the lock when the process ends, however it ends (even SIGKILL), so a
    staging folder whose lock is free belongs to a dead run, even when its PID was reused.
    """
    if fcntl is None:  # Windows: only the PID in the folder's name tells
        return None
    handle = open(path, "rb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def _release(handle):
    if handle is not None:
        handle.close()


def _claim(staging):
    """Lock the staging folder of a dead run, to finish or discard it; None while its run lives.

    Holding the lock also keeps a second run that starts meanwhile away from the folder.
    """
    pid = int(_STAGING_NAME.match(staging.name).group(1))
    try:
        handle = None if fcntl is None else open(staging / _LOCK, "rb")
    except FileNotFoundError:  # killed before it made its lock, or just starting
        handle = None
    if handle is None:
        return None if _pid_alive(pid) else contextlib.nullcontext()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _pid_alive(pid):
    """Whether process ``pid`` runs; our own PID counts as dead: found in --out, it was reused."""
    if os.name != "posix" or pid == os.getpid():
        return False  # Windows has no harmless probe (os.kill would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@contextlib.contextmanager
def _sigint_deferred():
    """Hold Ctrl-C while the block runs, then raise KeyboardInterrupt if it came."""
    # only Python's own handler raises KeyboardInterrupt: an ignored SIGINT (a background job)
    # or an application's handler is left alone, and handlers can only be set in the main thread
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught = []
    signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _atomic(path):
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    temporary = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _write_table(table, path, fmt, index):
    with _atomic(path) as temporary:
        if fmt == "parquet":
            table.to_parquet(temporary, index=index)
        else:
            table.to_csv(temporary, index=index)
    return path


# ---------------------------------------------------------------- loading


def _existing_file(option, value, suffixes=None):
    path = Path(value)
    if not path.exists():
        raise CLIError(f"{option} {value!r}: no such file.")
    if path.is_dir():
        raise CLIError(f"{option} {value!r} is a folder; give a file.")
    if suffixes and path.suffix not in suffixes:
        raise CLIError(f"{option} {value!r} must be a {' or '.join(suffixes)} file.")
    if not os.access(path, os.R_OK):
        raise CLIError(f"{option} {value!r} cannot be read (permission denied).")
    return path


def _load_factory(spec: str):
    """``package.module:factory`` or ``path/to/file.py:factory`` -> the callable it names.

    The current folder is searched AFTER the installed packages (it is appended to
    ``sys.path`` for this one import and removed again), so a ``matplotlib.py`` or ``torch.py``
    lying there never shadows the real package.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CLIError(
            f"--model {spec!r} is neither 'mlp', 'cnn' nor an import path "
            "'package.module:factory' (or 'file.py:factory').")
    try:
        if module_name.endswith(".py"):
            path = _existing_file("--model", module_name)
            name = f"_sktopo_user_model_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            cwd = str(Path.cwd())
            added = cwd not in sys.path
            if added:
                sys.path.append(cwd)
            try:
                module = importlib.import_module(module_name)
            finally:
                if added:
                    sys.path.remove(cwd)
    except CLIError:
        raise
    except ImportError as error:
        raise CLIError(f"cannot import {module_name!r} for --model: {error}. Run sktopo from "
                       "the folder that holds it, or install it.") from None
    except Exception as error:
        raise CLIError(f"importing {module_name!r} for --model raised "
                       f"{type(error).__name__}: {error}", _RUNTIME) from error
    factory = getattr(module, attr, None)
    if factory is None:
        raise CLIError(f"module {module_name!r} has no attribute {attr!r} (--model {spec!r}).")
    if not callable(factory):
        raise CLIError(f"--model {spec!r} names a {type(factory).__name__}, not a callable "
                       "that returns a torch.nn.Module.")
    return factory


def _load_array(option, value):
    path = _existing_file(option, value, (".npy",))
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise CLIError(f"{option} {value!r} holds Python objects (an object array); save a "
                           "numeric array, e.g. np.save(path, X.astype(np.float32)).") from None
        raise CLIError(f"{option} {value!r} is not a readable .npy file: {error}") from None
    except OSError as error:
        raise CLIError(f"{option} {value!r} cannot be read: {error}") from None


def _load_data(args, images: bool):
    from sktopo.datasets import load_digits

    if args.data == "digits":
        return load_digits(images=images)
    X = _load_array("--data", args.data)
    if X.dtype.kind not in "biuf":
        raise CLIError(f"--data {args.data!r} holds {X.dtype} values; save numbers.")
    if X.ndim < 2:
        raise CLIError(
            f"--data {args.data!r} has shape {X.shape}: it needs one row per input (2-D, or "
            "more for images: (n_inputs, channels, height, width)). A single input x: save "
            "x[None].")
    if len(X) < 2:
        raise CLIError(f"--data {args.data!r} holds {len(X)} input(s); a profile needs several.")
    if X.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(X.reshape(len(X), -1)).all(1))
        if bad.size:
            rows = ", ".join(map(str, bad[:10])) + (", ..." if bad.size > 10 else "")
            raise CLIError(f"--data {args.data!r} has NaN or infinite values in {bad.size} "
                           f"row(s): {rows} (positions in the file, from 0). Remove or impute "
                           "them.")
    y = _load_array("--labels", args.labels) if args.labels else None
    if y is not None and len(y) != len(X):
        raise CLIError(f"--labels has {len(y)} rows but --data has {len(X)}.")
    return X, y


def _load_checkpoint(model, path):
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CLIError(
            f"--checkpoint {str(path)!r} is not a plain state_dict (it holds pickled Python "
            "objects, e.g. a whole model). Save the weights with torch.save(model.state_dict(), "
            "path) and pass that file.", _RUNTIME) from None
    except (RuntimeError, OSError, EOFError) as error:
        raise CLIError(f"--checkpoint {str(path)!r} cannot be read by torch.load: "
                       f"{str(error).splitlines()[0]}", _RUNTIME) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CLIError(f"--checkpoint {str(path)!r} holds a {type(state).__name__}, not a "
                       "state_dict; save model.state_dict().", _RUNTIME)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = "; ".join(lines[1:4]) or lines[0]
        raise CLIError(f"--checkpoint {str(path)!r} does not fit the model ({detail}); was it "
                       "saved from another architecture?", _RUNTIME) from None


def _build_model(args):
    """Return (model, X, y, trainable) for the chosen model."""
    import torch

    from sktopo.nn import models

    if args.model in ("mlp", "cnn"):
        X, y = _load_data(args, images=args.model == "cnn")
        if args.data != "digits" and X[0].size != 64:
            raise CLIError(f"--model {args.model} takes 8x8 digits (64 values per input); "
                           f"--data has inputs of shape {X.shape[1:]}. Use --model "
                           "package.module:factory for other data.")
        if args.data != "digits":
            X = X.reshape((len(X), 1, 8, 8) if args.model == "cnn" else (len(X), 64))
        cls = models.DigitsMLP if args.model == "mlp" else models.DigitsCNN
        model = cls(random_state=args.seed)
        trainable = args.checkpoint is None
        if trainable and args.stage != "untrained" and y is None:
            raise CLIError("training a built-in model needs labels: pass --labels y.npy, or "
                           "--stage untrained.")
    else:
        if args.labels is not None or args.stage is not None:
            raise CLIError(
                "--labels and --stage apply to the built-in models, which sktopo trains; a "
                "model from --model package.module:factory is profiled as it is (train it "
                "yourself and pass --checkpoint).")
        if args.epochs is not None:
            raise CLIError("--epochs applies to the built-in models, which sktopo trains.")
        factory = _load_factory(args.model)
        X, y = _load_data(args, images=False)
        try:
            model = factory()
        except Exception as error:
            raise CLIError(f"calling {args.model}() raised {type(error).__name__}: {error} "
                           "(--model must name a factory that takes no arguments and returns "
                           "a torch.nn.Module).", _RUNTIME) from error
        if not isinstance(model, torch.nn.Module):
            raise CLIError(f"{args.model}() returned {type(model).__name__}, not a "
                           "torch.nn.Module.", _RUNTIME)
        trainable = False
    if args.checkpoint:
        if args.model in ("mlp", "cnn") and args.stage is not None:
            raise CLIError("--stage needs training; with --checkpoint the model is profiled as "
                           "loaded.")
        paths = _checkpoint_paths(args.checkpoint)
        # every checkpoint must fit before any work: loaded one at a time, then dropped
        for path in paths:
            _load_checkpoint(copy.deepcopy(model), path)
        names = [path.stem for path in paths]
        if not _is_sweep(args):
            names = ["given"]
        elif len(set(names)) < len(names):
            names = [str(path) for path in paths]
        model = _Sweep(model, dict(zip(names, paths)))
    elif args.cache:
        raise CLIError("--cache keeps the profile of each --checkpoint file; pass --checkpoint.")
    return model, X, y, trainable


_GLOB = re.compile(r"[*?\[]")


def _is_sweep(args):
    """Several checkpoints (or a pattern): one stage per checkpoint, named by its file."""
    values = args.checkpoint or []
    return len(values) > 1 or any(_GLOB.search(value) for value in values)


def _checkpoint_paths(values):
    """The files of the --checkpoint options, patterns expanded in natural order (epoch_2
    before epoch_10)."""
    import glob

    def natural(path):
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]

    paths = []
    for value in values:
        if _GLOB.search(value):
            found = sorted((p for p in glob.glob(value, recursive=True) if os.path.isfile(p)),
                           key=natural)
            if not found:
                raise CLIError(f"--checkpoint {value!r} matches no file.")
            paths.extend(Path(p) for p in found)
        else:
            paths.append(_existing_file("--checkpoint", value))
    return paths


class _Sweep:
    """The stages of a checkpoint sweep: the model (architecture) and {stage: file}; each
    stage's model is loaded when its turn comes and dropped after (bounded memory)."""

    def __init__(self, model, files):
        self.model = model
        self.files = files

    def load(self, stage):
        model = copy.deepcopy(self.model)
        _load_checkpoint(model, self.files[stage])
        return model


# ---------------------------------------------------------------- profile


def _embedder(model, args, verbose=None):
    import torch

    from sktopo import LayerEmbedder

    return LayerEmbedder(
        model, args.layers or [torch.nn.ReLU], unit="dataset", device=args.device,
        n_threads=args.n_threads, random_state=args.seed,
        verbose=(0 if args.quiet else 1) if verbose is None else verbose)


def _profile_stage(model, X, args, stage):
    """Per-layer features of one model state, indexed by layer."""
    from sktopo import DiagramFeatures, PersistenceDiagram, PHDimension, TwoNN

    verbose = 0 if args.quiet else 1
    _log(args, f"[{stage}] embedding {len(X)} inputs ...")
    clouds = _embedder(model, args).fit_transform(X)

    _log(args, f"[{stage}] persistence of {len(clouds)} layers ...")
    topo_clouds = clouds
    if args.scale == "minmax":
        from sktopo import CloudScaler

        # study A: every coordinate scaled to [0, 1], so bar lengths do not just track weight
        # norms
        topo_clouds = CloudScaler("minmax").fit_transform(clouds)
    diagrams = PersistenceDiagram(
        homology_dimensions=tuple(args.homology_dimensions), n_landmarks=args.n_landmarks or None,
        random_state=args.seed, n_jobs=args.n_jobs, verbose=verbose,
    ).fit_transform(topo_clouds)
    persistence = DiagramFeatures().set_output(transform="pandas").fit_transform(diagrams)

    _log(args, f"[{stage}] PH dimension and TwoNN ...")
    phdim = PHDimension(random_state=args.seed, n_jobs=args.n_jobs, verbose=verbose,
                        device=args.device).set_output(transform="pandas").fit_transform(clouds)
    twonn = TwoNN(random_state=args.seed).set_output(transform="pandas").fit_transform(clouds)
    # both estimators report e.g. "r2": give every column its estimator's name
    table = pd.concat([_own_columns(phdim, "phdim"), _own_columns(twonn, "twonn"), persistence],
                      axis=1)
    table.insert(0, "n_features", [cloud.shape[1] for cloud in clouds])
    return table


def _own_columns(table, name):
    """Prefix the columns of one estimator's table with its name: r2 -> phdim_r2."""
    return table.rename(columns=lambda c: c if c.startswith(name) else f"{name}_{c}")


def _rank_profile(model, X, args):
    """Min and mean cumulative rank per ReLU layer, or None when ReLURankRegions refuses."""
    from sktopo import ReLURankRegions

    try:
        return ReLURankRegions(model, device=args.device).fit(X).summary_
    except (ValueError, TypeError, NotImplementedError) as error:
        # e.g. a user model with Tanh or LP pooling, which are not piecewise linear.
        _log(args, f"rank profile skipped: {str(error).splitlines()[0]}")
        return None


def _cmd_profile(args):
    from sktopo._device import resolve_device

    start = time.perf_counter()
    try:
        resolve_device(args.device, owner="--device")
    except ValueError as error:
        raise CLIError(str(error).replace("--device: device=", "--device ")) from None
    with _OutputSet(args, _profile_names(args)) as output:
        # every input is checked before training, and before --out changes
        model, X, y, trainable = _build_model(args)
        _check_layers(model.model if isinstance(model, _Sweep) else model, X, args)
        stages = _model_stages(model, X, y, trainable, args)
        # one seeded subsample of inputs, shared by every stage and every measurement
        if args.max_inputs and args.max_inputs < len(X):
            keep = np.sort(np.random.default_rng(args.seed).choice(len(X), args.max_inputs,
                                                                   replace=False))
            X_all, X = X, X[keep]
        else:
            X_all = X
        table, ranks = _profile_stages(stages, X, args)
        output.commit(_write_profile(table, ranks, output, args))
        shown = [c for c in ("n_features", "phdim", "phdim_std", "twonn",
                             "H0__total_persistence_p1", "H1__n_bars", "H1__total_persistence_p1")
                 if c in table.columns]
        _print_table(table[shown])
        if ranks:
            _print_table(pd.concat(ranks, names=["stage"]))
            print(_rank_note(stages, X_all, X, ranks, args))
        written = [str(output.out / name) for name in _profile_names(args, bool(ranks))]
        _log(args, f"wrote {', '.join(written)} in {time.perf_counter() - start:.1f} s")
    return 0


def _rank_note(stages, X_all, X, ranks, args):
    """What the rank table's columns count (``X``: the inputs profiled), and what dead inputs
    (coordinates constant over all of ``X_all``, the data) do to the ranks: a first layer that
    ignores them loses no rank the data uses."""
    flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    d = flat.shape[1]
    data_rank = int(np.linalg.matrix_rank(flat - flat.mean(axis=0)))
    lines = [f"ranks: mean_rank_deficit and frac_inputs_rank_deficient count the rank a layer "
             f"lost against the most it could keep, min(units, rank at the ReLU layer before, "
             f"rank of the data = {data_rank}); frac_inputs_low_rank counts ranks below the input "
             f"dimension ({d}), so it is 1 at every layer narrower than {d} units."]
    dead = np.flatnonzero(np.ptp(np.asarray(X_all).reshape(len(X_all), -1), axis=0) == 0)
    if dead.size:
        example = " (the digits' always-blank pixels)" if args.data == "digits" else ""
        weights = {stage: _first_layer_weight(_stage_model(stages, stage), dead, d)
                   for stage in ranks}
        weights = {stage: w for stage, w in weights.items() if w is not None}
        said = ", ".join(f"{stage} up to {w:.2g}" for stage, w in weights.items())
        text = (f"dead inputs: {dead.size} of the {d} input coordinates are constant over all "
                f"{len(X_all)} inputs{example}.")
        if said:
            text += f" First-layer weights on them: {said}."
        if "trained" in weights and weights["trained"] < 1e-6:
            first = ranks["trained"].index[0]
            text += (f" Training's weight decay (their gradient is 0) removed them: the trained "
                     f"map ignores those coordinates, so {first}'s rank is at most "
                     f"{d - dead.size} and every trained layer is 'low rank' against {d}, but "
                     "no input moves along them: they cost no rank deficit.")
        else:
            text += (" A map may keep or drop those directions; no input moves along them, so "
                     "they cost no rank deficit.")
        lines.append(text)
    return "\n".join(textwrap.fill(line, 100, subsequent_indent="  ", break_on_hyphens=False)
                     for line in lines)


def _first_layer_weight(model, dead, d):
    """Largest |weight| of a model's first Linear layer on the input coordinates ``dead``, or
    None when the first layer with weights is not a Linear layer reading all ``d`` inputs."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            if module.in_features != d:
                return None
            return float(module.weight.detach()[:, dead].abs().max())
        if getattr(module, "weight", None) is not None:
            return None
    return None


def _profile_names(args, ranks=True):
    """The files ``profile`` writes, the main table first (without ``ranks``: no rank table)."""
    names = [f"profile.{args.format}"] + ([f"ranks.{args.format}"] if ranks else [])
    if args.no_plots:
        return names
    return names + ["profile.png"] + (["trajectory.png"] if _is_sweep(args) else [])


def _check_layers(model, X, args):
    """Check --layers against the model now, not after a training of many epochs.

    Names and patterns are resolved against the model; one forward pass of two inputs then
    counts each selected module's calls, so that a layer the forward pass never calls, or a
    call 'name#k' beyond the module's calls, is a usage error (status 2) too.
    """
    try:
        embedder = _embedder(model, args, verbose=0).fit()
    except (ValueError, TypeError) as error:
        raise CLIError(f"--layers: {error}") from None
    named = dict(model.named_modules())
    selected = {}  # selection -> (module name, call or None for every call)
    for name in embedder.layer_names_:
        base, _, call = name.rpartition("#")
        selected[name] = (name, None) if name in named or not base else (base, int(call))
    counts, error = _count_calls(model, embedder, X[:2], {base for base, _ in selected.values()})
    if counts is not None:  # the forward pass ran to its end: the counts are complete
        _check_calls(selected, counts, model)
    if error is not None:  # any other failure, e.g. inputs of the wrong width (status 1)
        raise error


def _count_calls(model, embedder, X, names):
    """Calls of the modules ``names`` in the first full forward pass of ``embedder`` on ``X``.

    Returns (counts or None when no pass ended, the exception the embedder raised or None).
    """
    modules = dict(model.named_modules())
    running, passes = dict.fromkeys(names, 0), []

    def count(name):
        def hook(*_):
            running[name] += 1
        return hook

    def end_of_pass(*_):  # the model's own hook runs after every inner module's
        passes.append(dict(running))
        running.update(dict.fromkeys(names, 0))

    handles = [modules[name].register_forward_hook(count(name)) for name in names]
    handles.append(model.register_forward_hook(end_of_pass))
    try:
        embedder.transform(X)
        error = None
    except Exception as raised:  # judged by the caller, once the counts are known
        error = raised
    finally:
        for handle in handles:
            handle.remove()
    return (passes[0] if passes else None), error


def _check_calls(selected, counts, model):
    silent = sorted({base for base, _ in selected.values() if counts[base] == 0})
    if silent:
        raise CLIError(
            f"--layers: {', '.join(map(repr, silent))} never ran in a forward pass of "
            f"{type(model).__name__} on the first inputs of --data; select layers that the "
            "model's forward calls (--layers NAME ..., as model.named_modules() spells them).")
    for selection, (base, call) in selected.items():
        runs = counts[base]
        if call is not None and call > runs:
            choice = (f"select {base!r}" if runs == 1 else f"select a call from 1 to {runs} "
                      f"({base + '#2'!r} is its second), or {base!r} for every call")
            raise CLIError(f"--layers {selection!r}: module {base!r} runs {runs} time(s) per "
                           f"forward pass, so it has no call {call}; {choice}.")


def _model_stages(model, X, y, trainable, args):
    """{stage: model}: the built-in model before and/or after training, or the given one."""
    from sktopo.nn import models

    if isinstance(model, _Sweep):
        return model
    if not trainable:
        return {"given": model}
    stage = args.stage or "both"
    stages = {}
    if stage in ("both", "untrained"):
        stages["untrained"] = copy.deepcopy(model)
    if stage in ("both", "trained"):
        _log(args, f"training the built-in {args.model} on {len(X)} inputs ...")
        models.fit_digits(model, X, y, epochs=30 if args.epochs is None else args.epochs,
                          random_state=args.seed, n_threads=args.n_threads,
                          verbose=0 if args.quiet else 1)
        stages["trained"] = model
    return stages


def _stage_names(stages):
    return list(stages.files if isinstance(stages, _Sweep) else stages)


def _stage_model(stages, name):
    """The model of one stage (a checkpoint of a sweep is loaded now)."""
    return stages.load(name) if isinstance(stages, _Sweep) else stages[name]


def _profile_stages(stages, X, args):
    """(per-layer table of every stage, {stage: rank summary} of the stages that have one)."""
    from sktopo._device import torch_threads

    tables, ranks = {}, {}
    cached = _stage_cache(stages, X, args)
    with torch_threads(args.n_threads):
        for name in _stage_names(stages):
            if cached is None:
                table, rank = _profile_one(stages, name, X, args)
            else:
                key = cached.key(name)
                if cached.function.check_call_in_cache(key):
                    _log(args, f"[{name}] from the cache in --cache {args.cache!r}")
                table, rank = cached.function(key, (stages, name, X, args))
            tables[name] = table
            if rank is not None:
                ranks[name] = rank
    return pd.concat(tables, names=["stage"]), ranks


def _profile_one(stages, name, X, args):
    """(per-layer table, rank summary or None) of one stage."""
    stage_model = _stage_model(stages, name)
    table = _profile_stage(stage_model, X, args, name)
    _log(args, f"[{name}] ReLU rank profile ...")
    return table, _rank_profile(stage_model, X, args)


def _cached_profile(key, job=None):
    """What --cache stores: its one hashed argument is the stage's key."""
    return _profile_one(*job)


class _StageCache:
    """--cache: each checkpoint's profile on disk, keyed by the checkpoint file's bytes, the
    model's architecture, the data profiled and every option that changes the numbers."""

    def __init__(self, stages, X, args):
        from joblib import Memory

        from sktopo.nn.checkpoints import _content_key, _embedder_key

        self.stages = stages
        self.function = Memory(args.cache, verbose=0).cache(_cached_profile, ignore=["job"])
        options = {name: getattr(args, name) for name in (
            "model", "layers", "seed", "homology_dimensions", "n_landmarks", "scale", "device")}
        self.fixed = [_content_key(np.asarray(X)), options,
                      _embedder_key(_embedder(stages.model, args, verbose=0))]

    def key(self, name):
        from sktopo.nn.checkpoints import _content_key, _file_digest

        return _content_key([self.fixed, _file_digest(self.stages.files[name])])


def _stage_cache(stages, X, args):
    if not getattr(args, "cache", None) or not isinstance(stages, _Sweep):
        return None
    return _StageCache(stages, X, args)


def _write_profile(table, ranks, output, args):
    """Write the tables and plots into the staging folder; return their names."""
    from sktopo import tidy

    fmt = args.format
    names = _profile_names(args, bool(ranks))
    _write_table(tidy(table), output.path(names[0]), fmt, False)
    if ranks:
        _write_table(pd.concat(ranks, names=["stage"]), output.path(names[1]), fmt, True)
    if not args.no_plots:
        _plot_profile(table, ranks, output.path("profile.png"))
        if _is_sweep(args):
            _plot_trajectory(table, output.path("trajectory.png"))
    return names


def _print_table(table):
    """Every column shown; counts as integers, other numbers with 3 decimals."""
    table = table.copy()
    for column in table.columns:
        values = table[column]
        name = str(column)
        is_count = name.endswith(_COUNT_SUFFIXES) or (  # min_rank, not frac_inputs_low_rank
            name.endswith("_rank") and not name.startswith(("frac_", "mean_")))
        if is_count and pd.api.types.is_numeric_dtype(values) and \
                np.allclose(values.dropna() % 1, 0):
            table[column] = values.round().astype("Int64")
    with pd.option_context("display.width", 200, "display.max_columns", None,
                           "display.float_format", "{:.3f}".format):
        print(table)


_PANELS = [("phdim", "phdim_std", "PH dimension"), ("twonn", None, "TwoNN dimension"),
           # the full sum of finite bar lengths (total_persistence_p1): not study A's
           # "lifespans sum", half of it per class (docs/gallery/study_a.md)
           ("H0__total_persistence_p1", None, "H0 total persistence"),
           ("H1__total_persistence_p1", None, "H1 total persistence")]


def _plot_profile(table, ranks, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sktopo.plotting import plot_layer_profile

    panels = [p for p in _PANELS if p[0] in table.columns]
    n_panels = len(panels) + bool(ranks)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.6), squeeze=False)
    for ax, (column, err, title) in zip(axes[0], panels):
        for stage, part in table.groupby(level="stage", sort=False):
            part = part.droplevel("stage")
            plot_layer_profile(part, y=column, yerr=err if err in part.columns else None, ax=ax,
                               label=stage, ylabel=title)
        ax.set_title(title)
    if ranks:
        ax = axes[0, -1]
        for stage, summary in ranks.items():
            color = f"C{list(table.index.unique('stage')).index(stage)}"  # as in the other panels
            plot_layer_profile(summary, y="mean_rank", yerr=None, ax=ax, label=f"{stage}: mean",
                               color=color)
            plot_layer_profile(summary, y="min_rank", yerr=None, ax=ax, label=f"{stage}: min",
                               color=color, linestyle="--")
        ax.set_title("cumulative rank of the ReLU map")
        ax.set_ylabel("rank (input to layer)")
        ax.legend()
    fig.tight_layout()
    with _atomic(path) as temporary:
        fig.savefig(temporary, dpi=120)
    plt.close(fig)


def _plot_trajectory(table, path):
    """A checkpoint sweep: each feature against stage, one line per layer (PH dimension with
    its spread over subsamples as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sktopo.plotting import plot_layer_profile

    panels = [(column, err, title) for column, err, title in _PANELS if column in table.columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    long = table.reset_index()
    for ax, (column, err, title) in zip(axes[0], panels):
        plot_layer_profile(long, y=column, yerr=err if err in long.columns else None, x="stage",
                           hue="layer", ax=ax, ylabel=title)
        ax.set_title(f"{title} over training")
        ax.set_xlabel("stage (checkpoint)")
    fig.tight_layout()
    with _atomic(path) as temporary:
        fig.savefig(temporary, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- manifolds


def _cmd_manifolds(args):
    from sktopo import DiagramFeatures, PersistenceDiagram, PHDimension
    from sktopo.datasets import make_manifolds

    name = f"manifolds.{args.format}"
    with _OutputSet(args, [name]) as output:
        clouds = make_manifolds(args.n_samples, random_state=args.seed)
        dims = tuple(args.homology_dimensions)
        _log(args, f"persistence (H{', H'.join(map(str, dims))}) of {len(clouds)} built-in "
                   f"manifolds ({args.n_samples} points each) ...")
        diagrams = PersistenceDiagram(homology_dimensions=dims, random_state=args.seed,
                                      n_jobs=args.n_jobs,
                                      verbose=0 if args.quiet else 1).fit_transform(clouds)
        features = DiagramFeatures().set_output(transform="pandas").fit_transform(diagrams)
        phdim = PHDimension(random_state=args.seed).set_output(
            transform="pandas").fit_transform(clouds)
        table = pd.concat([phdim[["phdim", "phdim_reliable"]], features], axis=1)
        _write_table(table, output.path(name), args.format, True)
        output.commit([name])
        shown = [c for c in ("phdim", "H0__n_bars", "H1__n_bars", "H1__max_lifetime",
                             "H2__n_bars", "H2__max_lifetime") if c in table.columns]
        _print_table(table[shown])
        _log(args, f"wrote {output.out / name}")
    return 0


# ---------------------------------------------------------------- parser

_PROFILE_EPILOG = """\
output files (in --out):
  profile.csv   tidy table, one row per value, columns:
                stage, layer, source, homology_dimension, feature, value
                (stage: untrained/trained for built-ins, 'given' for your model,
                 the file's stem for each of several --checkpoint files;
                 feature: phdim, phdim_std, phdim_r2, twonn, twonn_r2, n_bars,
                 total_persistence_p1, ... ; homology_dimension empty for
                 non-persistence features)
  ranks.csv     min/mean cumulative rank per ReLU layer (ReLU networks, max
                pooling allowed: its argmax is part of the region); rank
                deficit (mean_rank_deficit, frac_inputs_rank_deficient): the rank
                lost against min(units, rank at the layer before, rank of the
                data), informative where layers narrow; frac_inputs_low_rank:
                rank below the input dimension (1 wherever a layer is narrower)
  profile.png   per-layer plots (skipped with --no-plots)
  trajectory.png  several checkpoints: each feature against stage, one line
                per layer (skipped with --no-plots)
  (.parquet instead of .csv with --format parquet)

examples:
  sktopo profile                                  # built-in MLP on digits
  sktopo profile --model cnn --epochs 10 --out cnn-profile
  sktopo profile --model mymodels:make_net --data X.npy --checkpoint net.pt \\
                 --layers "encoder.*" --out my-profile
  sktopo profile --model mymodels:make_net --data X.npy \\
                 --checkpoint 'runs/epoch_*.pt' --out training   # one stage per file

--model package.module:factory imports that module (running its top-level code) and
calls factory() with no arguments: only use code you trust. The current folder is
searched after the installed packages, so files there never replace them.
"""

_MANIFOLDS_EPILOG = """\
output: manifolds.csv (one row per manifold: phdim and persistence features).

examples:
  sktopo manifolds
  sktopo manifolds --n-samples 400 --homology-dimensions 0 1 2 --out manifolds-h2
"""


def _parser():
    parser = _Parser(
        prog="sktopo",
        description="Topology and geometry of neural-network representations.",
        epilog="examples:\n  sktopo manifolds            # a quick install check\n"
               "  sktopo profile --help       # profile a network layer by layer",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="sktopo-output",
                        help="output folder; it must be empty or new unless --overwrite "
                             "(default: %(default)s)")
    common.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty --out folder, replacing the files this "
                             "run writes once the new ones are complete (other files are left "
                             "alone)")
    common.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="table format (default: %(default)s)")
    common.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="random_state for every random step (default: %(default)s)")
    common.add_argument("--n-jobs", type=_n_jobs, default=None,
                        help="parallel jobs (joblib; -1: every core)")
    common.add_argument("--n-threads", type=_int_at_least(1), default=1,
                        help="torch threads for training and forward passes (default: "
                             "%(default)s; more oversubscribe a busy machine for small models)")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true",
                        help="show Python tracebacks instead of one-line errors")

    profile = sub.add_parser(
        "profile", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="per-layer persistence, PH dimension, TwoNN and ReLU ranks of a network",
        description="Train (or load) a network, embed its layers and profile them layer by "
                    "layer.",
        epilog=_PROFILE_EPILOG,
    )
    profile.add_argument("--model", default="mlp",
                         help="'mlp' or 'cnn' (built-in digits models, trained here), "
                              "'package.module:factory' or 'file.py:factory' returning a "
                              "torch.nn.Module (default: %(default)s)")
    profile.add_argument("--data", default="digits",
                         help="'digits' or a .npy file of inputs, one per row (default: "
                              "%(default)s)")
    profile.add_argument("--labels", default=None,
                         help=".npy file of labels, to train a built-in model on --data")
    profile.add_argument("--checkpoint", action="append", default=None,
                         help="a state_dict (torch.save(model.state_dict(), path)), loaded "
                              "with torch.load(weights_only=True); repeat it, or give a "
                              "quoted glob pattern ('runs/epoch_*.pt'), to profile each "
                              "checkpoint as a stage named by its file")
    profile.add_argument("--cache", default=None, metavar="DIR",
                         help="with --checkpoint: keep each checkpoint's profile in DIR, keyed "
                              "by the file's content, the data and the options, so a sweep "
                              "that was stopped resumes with the checkpoints not yet done")
    profile.add_argument("--stage", choices=("both", "trained", "untrained"), default=None,
                         help="built-in models: profile before and/or after training "
                              "(default: both)")
    profile.add_argument("--epochs", type=_int_at_least(1), default=None,
                         help="training epochs for built-in models (default: 30)")
    profile.add_argument("--layers", nargs="+", default=None,
                         help="layer names or glob patterns, as model.named_modules() spells "
                              "them; 'name#2' is the 2nd call of a reused module (default: "
                              "every ReLU)")
    profile.add_argument("--max-inputs", type=_int_at_least(0), default=1000,
                         help="random subsample of inputs; 0 uses all (default: %(default)s)")
    _add_homology_dimensions(profile, "homology dimensions of the persistence features, e.g. "
                                      "0 1 (default: 0 1; H2 is much slower)")
    profile.add_argument("--n-landmarks", type=_int_at_least(0), default=400,
                         help="greedy max-min landmarks for persistence; 0 uses every point "
                              "(default: %(default)s)")
    profile.add_argument("--scale", choices=("minmax", "none"), default="minmax",
                         help="scaling of each layer's coordinates before persistence; 'minmax' "
                              "is study A's choice (default: %(default)s)")
    profile.add_argument("--device", default="auto",
                         help="'auto' (CUDA when available), 'cpu' or 'cuda' (default: "
                              "%(default)s)")
    profile.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    profile.set_defaults(func=_cmd_profile)

    manifolds = sub.add_parser(
        "manifolds", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="persistence features of built-in synthetic manifolds (a quick install check)",
        description="Persistence features (H0 and H1 by default) and PH dimension of a circle, "
                    "two circles, a sphere, a torus and a blob.",
        epilog=_MANIFOLDS_EPILOG,
    )
    # fewer points leave PHDimension under 3 subsample sizes (NaN for every manifold)
    # or with slopes from too few points: 30 gives numbers (checked on 200 seeds)
    manifolds.add_argument("--n-samples", type=_int_at_least(30, " (fewer give no PH dimension)"),
                           default=300, help="points per manifold, at least 30 "
                                             "(default: %(default)s)")
    _add_homology_dimensions(manifolds, "homology dimensions (default: 0 1; add 2 for the "
                                        "sphere's and torus's cavities, several times slower)")
    manifolds.set_defaults(func=_cmd_manifolds)
    return parser


def _one_line(text):
    return " ".join(str(text).split())


def main(argv=None) -> int:
    """Run the ``sktopo`` command; return its exit status (0, 1 runtime error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        return _run(argv, debug)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # a user of the command wants the library's message, not our source line
    print(f"sktopo: warning: {_one_line(message)}", file=sys.stderr if file is None else file)


def _run(argv, debug) -> int:
    try:
        args = _parser().parse_args(argv)
        if len(set(args.homology_dimensions)) != len(args.homology_dimensions):
            raise CLIError("--homology-dimensions lists a dimension twice.")
        if args.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise CLIError("--format parquet needs pyarrow: pip install pyarrow")
        return args.func(args)
    except CLIError as error:
        if debug:
            raise
        print(f"sktopo: error: {_one_line(error)}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt as interrupt:
        if debug:
            raise
        # the output folder's state, as the run left it (see _OutputSet)
        note = getattr(interrupt, "sktopo_note", "no output was written.")
        print(f"sktopo: interrupted; {note}", file=sys.stderr)
        return 130
    except Exception as error:  # the library's own errors name what and where
        if debug:
            raise
        print(f"sktopo: error: {_one_line(error)} (run with --debug for the traceback)",
              file=sys.stderr)
        return _RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
