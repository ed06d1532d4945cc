//! A small, fast, seeded pseudo-random number generator.
//!
//! [`Rng`] is xoshiro256** (Blackman and Vigna), seeded through splitmix64 so
//! that any `u64` seed, including 0, gives a well-mixed state. It is not
//! cryptographic; it exists so that every generator of faultline is
//! reproducible from one integer seed, on every platform, without pulling in
//! the `rand` crate (whose streams may change between versions).

/// One step of splitmix64: advances `state` and returns the next output.
///
/// Used to expand a seed into the state of [`Rng`], and handy on its own to
/// derive independent seeds from one (`splitmix64(&mut s)` twice gives two
/// unrelated values).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded xoshiro256** generator. The same seed always gives the same
/// sequence.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // splitmix64 never yields four zeros in a row from consecutive
        // states, so the all-zero state (a fixed point) cannot occur.
        Rng { s }
    }

    /// The next 64 uniformly distributed bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (unbiased: Lemire's multiply-and-reject).
    /// Returns 0 when `n` is 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// A uniform integer in `lo..=hi` (`lo` when `hi < lo`).
    #[inline]
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform index in `0..n` (0 when `n` is 0).
    #[inline]
    pub fn index(&mut self, n: usize) -> usize {
        // usize is at most 64 bits on every platform Rust supports here.
        self.below(n as u64) as usize
    }

    /// Shuffles `v` in place (Fisher-Yates), uniformly.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.index(i + 1);
            v.swap(i, j);
        }
    }

    /// True with probability `p` (always false for `p <= 0`, always true for
    /// `p >= 1`). Draws one number either way, so the stream stays aligned.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut v: Vec<u32> = (0..50).collect();
        let mut w = v.clone();
        Rng::new(3).shuffle(&mut v);
        Rng::new(3).shuffle(&mut w);
        assert_eq!(v, w, "same seed, same order");
        assert_ne!(v, (0..50).collect::<Vec<_>>(), "shuffled");
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>(), "a permutation");
        let mut r = Rng::new(5);
        assert!((0..1000).all(|_| r.index(7) < 7));
        assert_eq!(r.index(0), 0);
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::new(43);
        let differ = (0..100).any(|_| a.next_u64() != c.next_u64());
        assert!(differ);
    }

    #[test]
    fn splitmix_reference_values() {
        // Reference outputs of splitmix64 seeded with 0 (Vigna's C code).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = r.below(10);
            assert!(x < 10);
            seen[x as usize] += 1;
        }
        for &n in &seen {
            assert!((800..1200).contains(&n), "bucket {n} far from 1000");
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn range_and_floats() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let x = r.range_inclusive(5, 9);
            assert!((5..=9).contains(&x));
            let f = r.f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert_eq!(r.range_inclusive(3, 3), 3);
        let _ = r.range_inclusive(0, u64::MAX);
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
    }
}
