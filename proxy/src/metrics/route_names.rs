//! The routes' metric ids: a route is counted under a small id, and the id under the route's
//! label, so that a reload that adds, removes or reorders routes does not move counts from
//! one label to another. Ids are handed out once per label, for the life of the process; a
//! route that a reload removed keeps its series (counters do not go back), a route that
//! comes back gets its old id.

use std::sync::{Arc, Mutex};

/// Every route label seen since start, by id. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct RouteNames(Arc<Mutex<Vec<String>>>);

impl RouteNames {
    /// The ids of `labels`, in order, adding the labels not seen yet. A label past the
    /// 65536th has no id: its requests are counted with no route label.
    pub fn ids(&self, labels: &[String]) -> Vec<Option<u16>> {
        let Ok(mut known) = self.0.lock() else {
            return vec![None; labels.len()];
        };
        labels
            .iter()
            .map(|label| {
                let index = match known.iter().position(|k| k == label) {
                    Some(index) => index,
                    None => {
                        known.push(label.clone());
                        known.len() - 1
                    }
                };
                u16::try_from(index).ok()
            })
            .collect()
    }

    /// The labels, by id.
    pub fn labels(&self) -> Vec<String> {
        self.0.lock().map(|k| k.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::RouteNames;

    #[test]
    fn a_label_keeps_its_id_across_reloads() {
        let names = RouteNames::default();
        let first = names.ids(&["/".into(), "/api/".into()]);
        assert_eq!(first, [Some(0), Some(1)]);
        // Reordered, one removed, one added.
        let second = names.ids(&["/new/".into(), "/".into()]);
        assert_eq!(second, [Some(2), Some(0)]);
        assert_eq!(names.labels(), ["/", "/api/", "/new/"]);
    }
}
