"""Which source and which video each clip of the training stream comes from.

The stream is cut into micro-batches of B clips, numbered run-wide (`model.training.train_step`'s
``micro_batch_index``). Micro-batch ``m`` draws from one source, picked by weight, so its clips have one
length (a source of images gives 1-frame clips, a source of videos N-frame clips), as the official mixed
loader picks a dataset per batch. Within a source, videos come in a seeded permutation per epoch of that
source, so an epoch of a source is one pass over its videos, as the official shuffled sampler makes it: the
``k``-th clip the stream takes from a source of ``n`` videos is place ``k % n`` of permutation ``k // n``.

Everything is a function of the seed and the numbers involved: the source of micro-batch ``m`` is draw
``m % BLOCK`` of the generator of block ``m // BLOCK``, and ``k`` counts the micro-batches of the same source
before ``m`` (those blocks' draws are made again, once per process, when asked). So any process, in any
order, before or after a resume, finds the same video for the same clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLOCK = 4096  # micro-batches whose sources one generator draws
CLIP, MIX, ORDER = 0, 1, 2  # the first word of each kind of generator's seed: no two kinds share a seed
KEPT_ORDERS = 4  # permutations kept in memory (a micro-batch may span the end of a source's epoch)


class ClipStream:
    """The source and video of every clip of the stream.

    Arguments:
        sizes: the number of videos of each source (each at least 1).
        probabilities: the chance of each source to be a micro-batch's (summing to 1).
        seed: the run's seed.
    """

    def __init__(self, sizes: Sequence[int], probabilities: Sequence[float], seed: int) -> None:
        if len(sizes) != len(probabilities) or not sizes or min(sizes) < 1:
            raise ValueError(f"give one size of at least 1 per source: {list(sizes)}, {list(probabilities)}")
        self.sizes = [int(size) for size in sizes]
        self.cumulative = np.cumsum(np.asarray(probabilities, dtype=np.float64))
        self.seed = seed
        self._before = [np.zeros(len(self.sizes), np.int64)]  # micro-batches per source before block b
        self._picks: tuple[int, np.ndarray] | None = None  # the last block's sources
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_picks": None, "_orders": {}}  # a worker draws its own again

    def source_of(self, micro_batch: int) -> int:
        """The place in ``sizes`` of the source micro-batch ``micro_batch`` draws from."""
        block, place = divmod(micro_batch, BLOCK)
        return int(self._block(block)[place])

    def video_of(self, micro_batch: int, position: int, batch_size: int) -> tuple[int, int]:
        """(source, video) of clip ``position`` of micro-batch ``micro_batch`` of ``batch_size`` clips."""
        if micro_batch < 0 or not 0 <= position < batch_size:
            raise IndexError(f"no clip {position} in micro-batch {micro_batch} of {batch_size} clips")
        source = self.source_of(micro_batch)
        draw = self.earlier(micro_batch, source) * batch_size + position
        epoch, place = divmod(draw, self.sizes[source])
        return source, int(self._order(source, epoch)[place])

    def earlier(self, micro_batch: int, source: int) -> int:
        """How many micro-batches before ``micro_batch`` draw from ``source``."""
        block, place = divmod(micro_batch, BLOCK)
        while len(self._before) <= block:
            done = len(self._before) - 1
            counts = np.bincount(self._block(done), minlength=len(self.sizes))
            self._before.append(self._before[done] + counts)
        return int(self._before[block][source] + np.count_nonzero(self._block(block)[:place] == source))

    def _block(self, block: int) -> np.ndarray:
        """The sources of the micro-batches of ``block``, drawn by weight."""
        if self._picks is None or self._picks[0] != block:
            draws = np.random.default_rng([MIX, self.seed, block]).random(BLOCK)
            picks = np.searchsorted(self.cumulative, draws * self.cumulative[-1], side="right")
            self._picks = (block, np.minimum(picks, len(self.sizes) - 1))
        return self._picks[1]

    def _order(self, source: int, epoch: int) -> np.ndarray:
        """The order of a source's videos in one of its epochs."""
        key = (source, epoch)
        if key not in self._orders:
            if len(self._orders) >= KEPT_ORDERS:
                del self._orders[next(iter(self._orders))]
            generator = np.random.default_rng([ORDER, self.seed, source, epoch])
            self._orders[key] = generator.permutation(self.sizes[source])
        return self._orders[key]
