//! Splitting patients, stratified by event so that every part has its share of events:
//! a held-out fraction, and k folds (repeated with a fresh shuffle per repeat). All from
//! the seed.

use crate::fusion::Rng;

/// (kept, held out): about `fraction` of the events and of the censored rows held out.
pub fn stratified_split(event: &[bool], fraction: f64, rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let mut kept = Vec::new();
    let mut held = Vec::new();
    for stratum in [true, false] {
        let mut rows: Vec<usize> = (0..event.len()).filter(|&i| event[i] == stratum).collect();
        rng.shuffle(&mut rows);
        let take = (rows.len() as f64 * fraction).round() as usize;
        held.extend_from_slice(&rows[..take]);
        kept.extend_from_slice(&rows[take..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// The test rows of each of `k` folds: events and censored rows dealt round-robin after a
/// shuffle, so fold sizes and event counts differ by at most one.
pub fn stratified_folds(event: &[bool], k: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for stratum in [true, false] {
        let mut rows: Vec<usize> = (0..event.len()).filter(|&i| event[i] == stratum).collect();
        rng.shuffle(&mut rows);
        for row in rows {
            folds[next % k].push(row);
            next += 1;
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    folds
}

/// Rows not in `held`.
pub fn complement(rows: usize, held: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(rows - held.len());
    let mut held = held.iter().peekable();
    for row in 0..rows {
        if held.peek() == Some(&&row) {
            held.next();
        } else {
            out.push(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows_with_balanced_events() {
        let event: Vec<bool> = (0..103).map(|i| i % 3 == 0).collect();
        let folds = stratified_folds(&event, 5, &mut Rng::new(4));
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        let events: Vec<usize> = folds
            .iter()
            .map(|f| f.iter().filter(|&&r| event[r]).count())
            .collect();
        assert!(
            events.iter().max().unwrap() - events.iter().min().unwrap() <= 1,
            "{events:?}"
        );
        assert_eq!(complement(103, &folds[0]).len(), 103 - folds[0].len());
        // Same seed, same folds.
        assert_eq!(folds, stratified_folds(&event, 5, &mut Rng::new(4)));
    }

    #[test]
    fn a_split_holds_out_the_fraction_of_each_stratum() {
        let event: Vec<bool> = (0..100).map(|i| i < 40).collect();
        let (kept, held) = stratified_split(&event, 0.25, &mut Rng::new(1));
        assert_eq!(held.len(), 25);
        assert_eq!(held.iter().filter(|&&r| event[r]).count(), 10);
        assert_eq!(kept.len() + held.len(), 100);
    }
}
