//! Interleaved timing for benches on a shared machine (included by path from the benches that
//! use it). Criterion measures the contenders of a group one after another, seconds apart, so
//! its ratios follow the load other processes put on the machine meanwhile; here each round
//! times one pass of every contender in turn (starting with the next one each round), so the
//! load falls on all of them alike.

/// Number of rounds.
pub const ROUNDS: usize = 31;

/// A contender: its name and one pass of its operations over the shared state.
pub type Contender<'a, S> = (&'a str, &'a mut dyn FnMut(&mut S));

/// Runs [`ROUNDS`] rounds of one timed pass per contender over `state` (each pass does
/// `per_pass` operations) and prints each contender's median time per operation and the last
/// contender's median over each one's (the last is the reference, e.g. memcpy or the bare
/// system call) on one line starting with `group`.
pub fn interleaved<S: ?Sized>(group: &str, contenders: &mut [Contender<'_, S>], state: &mut S, per_pass: usize) {
    let n = contenders.len();
    let mut times = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        for k in (0..n).map(|k| (k + round) % n) {
            let start = std::time::Instant::now();
            (contenders[k].1)(state);
            times[k].push(start.elapsed().as_secs_f64() * 1e9 / per_pass as f64);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[ROUNDS / 2]
        })
        .collect();
    let (reference, base) = (contenders[n - 1].0, medians[n - 1]);
    let parts: Vec<String> = contenders
        .iter()
        .zip(&medians)
        .map(|((name, _), m)| format!("{name} {m:.0} ns ({:.1}%)", base / m * 100.0))
        .collect();
    println!(
        "{group} interleaved, {ROUNDS} rounds, median per operation ({reference} / contender): {}",
        parts.join(", ")
    );
}
