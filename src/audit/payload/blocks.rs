//! A buffer of whole blocks for direct I/O: its memory, and the file
//! offset it stands for, are aligned to [`BLOCK`].
//!
//! Invariant: `bytes()[0]` is the byte at file offset `start`, a multiple
//! of [`BLOCK`]; the buffer never holds more than its capacity, and
//! [`Blocks::padded`] hands out only whole blocks (the tail zero-filled).

/// Alignment of memory, file offsets and lengths for `O_DIRECT` (the
/// largest logical block size in common use).
pub(super) const BLOCK: usize = 4096;

pub(super) struct Blocks {
    /// Allocated with one spare block, so that an aligned window fits.
    raw: Vec<u8>,
    /// Where the aligned window begins in `raw`.
    base: usize,
    capacity: usize,
    len: usize,
    /// The file offset of the first byte held.
    start: u64,
}

impl Blocks {
    /// A buffer of `capacity` bytes (rounded up to whole blocks) standing
    /// for the file from the block-aligned offset `start`.
    pub(super) fn new(capacity: usize, start: u64) -> Blocks {
        let capacity = capacity.div_ceil(BLOCK).max(1) * BLOCK;
        let raw = vec![0u8; capacity + BLOCK];
        let base = raw.as_ptr().align_offset(BLOCK).min(BLOCK);
        Blocks {
            raw,
            base,
            capacity,
            len: 0,
            start: start - start % BLOCK as u64,
        }
    }

    /// The file offset of the first byte held.
    pub(super) fn start(&self) -> u64 {
        self.start
    }

    /// The file offset just past the last byte held.
    pub(super) fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    pub(super) fn space(&self) -> usize {
        self.capacity - self.len
    }

    /// Appends as much of `data` as fits; returns how much did.
    pub(super) fn fill(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.space());
        let at = self.base + self.len;
        self.raw[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// The whole blocks held, for writing at [`Blocks::start`].
    pub(super) fn full_blocks(&self) -> &[u8] {
        let n = self.len - self.len % BLOCK;
        &self.raw[self.base..self.base + n]
    }

    /// Everything held, the last block padded with zeros.
    pub(super) fn padded(&mut self) -> &[u8] {
        let n = self.len.div_ceil(BLOCK) * BLOCK;
        let at = self.base;
        self.raw[at + self.len..at + n].fill(0);
        &self.raw[at..at + n]
    }

    /// Forgets the whole blocks (written), keeping the partial tail at the
    /// front.
    pub(super) fn advance_past_full_blocks(&mut self) {
        let n = self.len - self.len % BLOCK;
        let at = self.base;
        self.raw.copy_within(at + n..at + self.len, at);
        self.len -= n;
        self.start += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_offsets_are_aligned_and_the_tail_is_kept() {
        let mut b = Blocks::new(3 * BLOCK, 2 * BLOCK as u64 + 100);
        assert_eq!(b.start(), 2 * BLOCK as u64);
        assert_eq!(b.full_blocks().as_ptr() as usize % BLOCK, 0);
        assert_eq!(b.fill(&vec![7u8; BLOCK + 10]), BLOCK + 10);
        assert_eq!(b.full_blocks().len(), BLOCK);
        let padded = b.padded();
        assert_eq!(padded.len(), 2 * BLOCK);
        assert!(padded[BLOCK + 10..].iter().all(|&x| x == 0));
        b.advance_past_full_blocks();
        assert_eq!(
            (b.start(), b.end()),
            (3 * BLOCK as u64, 3 * BLOCK as u64 + 10)
        );
        assert_eq!(b.fill(&vec![1u8; 5 * BLOCK]), 3 * BLOCK - 10);
        assert_eq!(b.space(), 0);
    }
}
