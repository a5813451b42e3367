//! The built-ins the prelude's JS calls on every execution, as they were before the rule
//! was evaluated, and whether the rule has since replaced them.
//!
//! Rust skips some of that JS (assigning the inputs to new objects, parsing the prior
//! claims, reading a plain token). A rule can only tell when it replaced one of the
//! built-ins that JS calls, say with a logging `Array.prototype.push`: then the JS path
//! must run, as it always did. The checks read descriptors only, so they never run a
//! getter or anything else of the rule's.

use javy::quickjs::{qjs, Ctx, Object};

use crate::js::{keep_atom, Atom, Js, Kept, Own};

pub struct Builtins {
    pub object_prototype: Kept,
    pub array_prototype: Kept,
    array_iterator_prototype: Kept,
    iterator_prototype: Kept,
    pub array: Kept,
    array_iterator: Kept,
    array_iterator_next: Kept,
    pub array_every: Kept,
    pub array_slice: Kept,
    pub array_push: Kept,
    pub array_species: Kept,
    object_proto_setter: Kept,
    pub every: Atom,
    pub slice: Atom,
    pub push: Atom,
}

impl Builtins {
    /// Reads the `builtins` of the prelude's `layout()`.
    pub fn new<'js>(cx: &Ctx<'js>, layout: &Object<'js>) -> javy::quickjs::Result<Builtins> {
        let builtins: Object = layout.get("builtins")?;
        let kept = |name: &str| Kept::property(&builtins, name);
        Ok(Builtins {
            object_prototype: kept("objectPrototype")?,
            array_prototype: kept("arrayPrototype")?,
            array_iterator_prototype: kept("arrayIteratorPrototype")?,
            iterator_prototype: kept("iteratorPrototype")?,
            array: kept("array")?,
            array_iterator: kept("arrayIterator")?,
            array_iterator_next: kept("arrayIteratorNext")?,
            array_every: kept("arrayEvery")?,
            array_slice: kept("arraySlice")?,
            array_push: kept("arrayPush")?,
            array_species: kept("arraySpecies")?,
            object_proto_setter: kept("objectProtoSetter")?,
            every: keep_atom(cx, "every"),
            slice: keep_atom(cx, "slice"),
            push: keep_atom(cx, "push"),
        })
    }

    /// Whether `object[atom]` is an own data property holding `expected`.
    pub fn holds(js: Js, object: Kept, atom: Atom, expected: Kept) -> bool {
        matches!(js.own(object.raw(), atom), Some(Own::Data { value, .. }) if value.raw() == expected.raw())
    }

    /// Whether `for (x of array)` calls only built-ins: Array.prototype's iterator and the
    /// array iterator's `next`.
    pub fn iteration_intact(&self, js: Js) -> bool {
        let iterator = qjs::JS_ATOM_Symbol_iterator as Atom;
        let next = qjs::JS_ATOM_next as Atom;
        Builtins::holds(js, self.array_prototype, iterator, self.array_iterator)
            && Builtins::holds(
                js,
                self.array_iterator_prototype,
                next,
                self.array_iterator_next,
            )
    }

    /// Whether destructuring an array (`const [a, b] = pair`) calls only built-ins: it
    /// iterates, then closes the iterator, looking `return` up on it, which must walk the
    /// original prototype chain and find nothing.
    pub fn destructuring_intact(&self, js: Js) -> bool {
        let ret = qjs::JS_ATOM_return as Atom;
        let chain = [
            self.array_iterator_prototype,
            self.iterator_prototype,
            self.object_prototype,
        ];
        self.iteration_intact(js)
            && chain.iter().enumerate().all(|(i, object)| {
                let absent = matches!(js.own(object.raw(), ret), Some(Own::Absent));
                // Object.prototype's own prototype is always null.
                let linked = match chain.get(i + 1) {
                    Some(parent) => js
                        .prototype(object.raw())
                        .is_some_and(|proto| proto.raw() == parent.raw()),
                    None => true,
                };
                absent && linked
            })
    }

    /// Whether assigning a property that a plain object does not have yet just creates it,
    /// running nothing of the rule's: every property of Object.prototype is a writable
    /// data property, but the original `__proto__` accessor.
    pub fn assignment_intact(&self, js: Js) -> bool {
        let Some(keys) = js.all_keys(self.object_prototype.raw()) else {
            return false;
        };
        let proto = qjs::JS_ATOM___proto__ as Atom;
        let intact = keys
            .atoms()
            .all(|atom| match js.own(self.object_prototype.raw(), atom) {
                Some(Own::Data { writable, .. }) => writable,
                Some(Own::Accessor { setter, .. }) => {
                    atom == proto && setter.raw() == self.object_proto_setter.raw()
                }
                _ => false,
            });
        intact
    }

    /// Whether `Array[Symbol.species]` is still the built-in getter (`slice` consults it).
    pub fn species_intact(&self, js: Js) -> bool {
        let species = qjs::JS_ATOM_Symbol_species as Atom;
        matches!(
            js.own(self.array.raw(), species),
            Some(Own::Accessor { getter, .. }) if getter.raw() == self.array_species.raw()
        )
    }
}
