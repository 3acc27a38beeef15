//! The shared catalogue of six categories and 34 allocation types, seeded by migration 0002
//! and held in memory: no request queries it.

use std::collections::HashMap;

use rusqlite::Connection;

use super::money::Percent;

#[derive(Clone, Debug)]
pub(crate) struct AllocationType {
    pub(crate) id: String,
    pub(crate) category_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) purpose: String,
    pub(crate) sort_order: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Category {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) icon: String,
    pub(crate) icon_color: String,
    pub(crate) description: String,
    pub(crate) target: Percent,
    pub(crate) sort_order: i64,
    /// In `sort_order`.
    pub(crate) types: Vec<AllocationType>,
}

#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// In `sort_order`.
    pub(crate) categories: Vec<Category>,
    /// Type id → (category index, type index).
    by_type: HashMap<String, (usize, usize)>,
}

impl Catalog {
    pub(crate) fn load(c: &Connection) -> rusqlite::Result<Catalog> {
        let mut stmt = c.prepare(
            "SELECT id, name, label, icon, icon_color, description, target_percentage_bp, sort_order
             FROM allocation_categories ORDER BY sort_order, name",
        )?;
        let mut categories: Vec<Category> = stmt
            .query_map([], |r| {
                Ok(Category {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    label: r.get(2)?,
                    icon: r.get(3)?,
                    icon_color: r.get(4)?,
                    description: r.get(5)?,
                    target: Percent(r.get(6)?),
                    sort_order: r.get(7)?,
                    types: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = c.prepare(
            "SELECT id, category_id, name, description, purpose, sort_order
             FROM allocation_types ORDER BY sort_order, name",
        )?;
        let types = stmt.query_map([], |r| {
            Ok(AllocationType {
                id: r.get(0)?,
                category_id: r.get(1)?,
                name: r.get(2)?,
                description: r.get(3)?,
                purpose: r.get(4)?,
                sort_order: r.get(5)?,
            })
        })?;
        for t in types {
            let t = t?;
            if let Some(cat) = categories.iter_mut().find(|c| c.id == t.category_id) {
                cat.types.push(t);
            }
        }
        let mut by_type = HashMap::new();
        for (ci, cat) in categories.iter().enumerate() {
            for (ti, t) in cat.types.iter().enumerate() {
                by_type.insert(t.id.clone(), (ci, ti));
            }
        }
        Ok(Catalog {
            categories,
            by_type,
        })
    }

    pub(crate) fn category_of_type(&self, type_id: &str) -> Option<&Category> {
        self.by_type
            .get(type_id)
            .map(|(ci, _)| &self.categories[*ci])
    }

    pub(crate) fn has_type(&self, type_id: &str) -> bool {
        self.by_type.contains_key(type_id)
    }

    pub(crate) fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// The sum of the targets (90 % in the shipped data; reported, not corrected).
    pub(crate) fn target_sum(&self) -> Percent {
        Percent(self.categories.iter().map(|c| c.target.0).sum())
    }
}
