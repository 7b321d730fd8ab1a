//! The scope a script runs in, bound to one row after another without being rebuilt.
//!
//! Binding afresh for every row — eight names pushed and marked read-only, a map made for
//! each row image and dropped after the call — cost about a fifth of a short script. So the
//! scope keeps the names the script uses (of [`NAMES`], in [`PUSH_ORDER`]) from call to call,
//! and a call overwrites their values in place (a row's values slot by slot, see [`values::fill_row`]);
//! what the script declared itself is dropped before the next call, so no row sees another's
//! variables. The scope is rebuilt only when a row image comes or goes (`before` is `()` on an
//! insert, a map on an update) or when a closure captured a bound name, which makes its value
//! shared: neither can be overwritten in place.

use fundguard_core::{ChangeEvent, Value};
use rhai::{Dynamic, ImmutableString, Map, Scope};

use super::sandbox::NAMES;
use super::values::{self, NamedColumns};

/// The order the names a script uses are pushed in (indexes into [`NAMES`]). Rhai finds a
/// name by searching the scope from its end, so the row images, read most, go last.
const PUSH_ORDER: [usize; NAMES.len()] = [0, 1, 2, 5, 7, 6, 3, 4];

/// One call's values for the names the script uses.
pub(crate) struct Row<'a> {
    pub event: &'a ChangeEvent,
    /// The key's values, named by `key_names`.
    pub key_names: &'a [String],
    pub key: &'a [Value],
    /// The key's state (empty for a new key); `None` when the script keeps none.
    pub state: Option<Map>,
    pub lookup: &'a Map,
}

/// The scope and what its bound names hold.
#[derive(Default)]
pub(crate) struct Bindings {
    scope: Scope<'static>,
    /// Whether `before` and `after` hold maps (else `()`), once the scope holds the names.
    images: Option<[bool; 2]>,
}

impl Bindings {
    /// Binds `row` and answers the scope to run the script in. `used` says which of
    /// [`NAMES`] the script names (the others are not bound at all); `before` and `after` are the
    /// columns it names of each image (`None`: the whole row).
    pub(crate) fn bind(
        &mut self,
        row: Row<'_>,
        used: &[bool; NAMES.len()],
        before: Option<&mut NamedColumns>,
        after: Option<&mut NamedColumns>,
    ) -> &mut Scope<'static> {
        let event = row.event;
        let images = [used[3] && event.before.is_some(), used[4] && event.after.is_some()];
        let scope = &mut self.scope;
        let bound = PUSH_ORDER.iter().filter(|&&i| used[i]).count();
        let reusable = self.images == Some(images) && scope.len() >= bound && {
            scope.rewind(bound);
            !scope.iter_raw().any(|(_, _, value)| value.is_shared())
        };
        if !reusable {
            scope.rewind(0);
            let image = |has: bool, columns: &Option<&mut NamedColumns>| match (has, columns) {
                (false, _) => Dynamic::UNIT,
                (true, Some(named)) => Dynamic::from_map(named.empty_map()),
                (true, None) => Dynamic::from_map(Map::new()),
            };
            for i in PUSH_ORDER.into_iter().filter(|&i| used[i]) {
                let placeholder = match NAMES[i] {
                    "table" | "op" => Dynamic::from(ImmutableString::new()),
                    "commit_time" => Dynamic::from_int(0),
                    "before" => image(images[0], &before),
                    "after" => image(images[1], &after),
                    "state" => Dynamic::UNIT,
                    _ => Dynamic::from_map(Map::new()),
                };
                if NAMES[i] == "state" {
                    scope.push_dynamic(NAMES[i], placeholder);
                } else {
                    scope.push_constant_dynamic(NAMES[i], placeholder);
                }
            }
            self.images = Some(images);
        }

        if used[0]
            && let Some(table) = scope.get_value_mut::<ImmutableString>("table")
            && table.as_str() != &*event.table
        {
            *table = event.table.as_ref().into();
        }
        if used[1]
            && let Some(op) = scope.get_value_mut::<ImmutableString>("op")
            && op.as_str() != event.op.as_str()
        {
            *op = event.op.as_str().into();
        }
        if used[2]
            && let Some(time) = scope.get_value_mut::<rhai::INT>("commit_time")
        {
            *time = event.commit_time.as_micros();
        }
        for (name, image, columns) in [("before", &event.before, before), ("after", &event.after, after)] {
            if let Some(image) = image
                && let Some(map) = scope.get_value_mut::<Map>(name)
            {
                values::fill_row(map, image, columns);
            }
        }
        if used[5]
            && let Some(key) = scope.get_value_mut::<Map>("key")
        {
            *key = row
                .key_names
                .iter()
                .zip(row.key)
                .map(|(k, v)| (k.as_str().into(), values::dynamic(v).into_read_only()))
                .collect();
        }
        if used[6]
            && let Some(state) = scope.get_mut("state")
        {
            *state = row.state.map_or(Dynamic::UNIT, Dynamic::from_map);
        }
        if used[7]
            && let Some(lookup) = scope.get_value_mut::<Map>("lookup")
        {
            *lookup = row.lookup.iter().map(|(k, v)| (k.clone(), v.clone().into_read_only())).collect();
        }
        scope
    }

    /// Takes what the script left in `state` (`()` if it names none).
    pub(crate) fn take_state(&mut self) -> Dynamic {
        self.scope.get_mut("state").map(std::mem::take).unwrap_or_default()
    }
}
