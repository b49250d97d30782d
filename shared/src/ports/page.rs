//! Paging, once for every store and listing: read one item more than the
//! page, keep the page, and continue after its last item only if that
//! extra item existed. So a page holds exactly `min(limit, left)` items
//! and its cursor is `None` exactly when nothing is left.

/// How many items to read for a page of `limit`.
pub fn lookahead(limit: u32) -> usize {
    limit as usize + 1
}

/// Cuts what was read (up to [`lookahead`] items) to a page of `limit`,
/// and the position to continue from (`position` of the page's last item)
/// when more was read than the page holds.
pub fn cut<T, P>(
    mut read: Vec<T>,
    limit: u32,
    position: impl FnOnce(&T) -> P,
) -> (Vec<T>, Option<P>) {
    let more = read.len() > limit as usize;
    read.truncate(limit as usize);
    let next = if more {
        read.last().map(position)
    } else {
        None
    };
    (read, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_only_when_more_was_read() {
        assert_eq!(cut(vec![1, 2, 3], 2, |n| *n), (vec![1, 2], Some(2)));
        assert_eq!(cut(vec![1, 2], 2, |n| *n), (vec![1, 2], None));
        assert_eq!(cut(Vec::<u8>::new(), 2, |n| *n), (vec![], None));
        assert_eq!(lookahead(20), 21);
    }
}
