//! Ordered maps, sets and sorted lists built by inserting, not by `collect()`
//! or `sort()`.
//!
//! `collect()` into a `BTreeMap`/`BTreeSet` and `Vec::sort` run the
//! standard library's stable sort, and that sort is compiled anew for every
//! element type: ~5 KB of the release binary apiece (docs/architecture.md,
//! "Binary size"). Inserting one entry at a time reuses the map's `insert`,
//! which its users have anyway; for collections of a mesh's size (a few
//! hundred entries at most) it is as fast. The result is the same: with
//! repeated keys the last value wins, as with `collect()`.

use std::collections::{BTreeMap, BTreeSet};

/// The map of `pairs` (a later pair replaces an earlier one with its key).
pub fn map_from<K: Ord, V>(pairs: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, V> {
    let mut map = BTreeMap::new();
    map.extend(pairs);
    map
}

/// The set of `items`.
pub fn set_from<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeSet<T> {
    let mut set = BTreeSet::new();
    set.extend(items);
    set
}

/// `items` in ascending order without repeats: `sort()` then `dedup()`.
pub fn sorted_unique<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    set_from(items).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_collect_and_sort() {
        let pairs = [(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd')];
        assert_eq!(
            map_from(pairs),
            pairs.into_iter().collect::<BTreeMap<_, _>>()
        );
        assert_eq!(set_from([5, 1, 5, 2]), BTreeSet::from([1, 2, 5]));
        let mut v = vec![4, 2, 4, 9, 2, 1];
        v.sort();
        v.dedup();
        assert_eq!(sorted_unique([4, 2, 4, 9, 2, 1]), v);
        assert!(sorted_unique(Vec::<u8>::new()).is_empty());
    }
}
