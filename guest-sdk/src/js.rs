//! The raw QuickJS calls of the per-execution path.
//!
//! rquickjs's safe wrappers are convenient but, where cost is counted in wasm instructions,
//! not cheap: every wrapped value holds a reference to its context, every `set("key", ..)`
//! looks its atom up again. The code that runs on every execution goes through these few
//! helpers instead, on values and atoms made once at initialization ([`Kept`]).
//!
//! Each helper is one QuickJS call or two; they are safe to call with any value of the
//! context they were given, and report a failure (a pending JS exception) as `None` or
//! `false`, leaving the exception for the caller to take or clear.

use std::marker::PhantomData;

use javy::quickjs::{qjs, Ctx, Object, Value};

pub use qjs::JSAtom as Atom;
pub use qjs::JSValue as Raw;

/// The largest index [`Js::index`] makes an atom for.
pub const MAX_INDEX: u32 = (1 << 31) - 1;

/// A value or atom made at initialization and never released: the snapshot owns it, so
/// every instance uses it as it is, without counting references.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Kept(Raw);

impl Kept {
    /// Keeps `value` for the life of the runtime.
    pub fn keep(value: &Value) -> Kept {
        // SAFETY: `value` is a live value of its context; the new reference is never freed.
        Kept(unsafe { qjs::JS_DupValue(value.ctx().as_raw().as_ptr(), value.as_raw()) })
    }

    /// Keeps `object[name]` (the prelude's layout objects name what the runtime keeps).
    pub fn property(object: &Object, name: &str) -> javy::quickjs::Result<Kept> {
        Ok(Kept::keep(&object.get::<_, Value>(name)?))
    }

    pub fn raw(self) -> Raw {
        self.0
    }

    /// A new reference as an rquickjs value, for the paths that are not hot.
    pub fn value<'js>(self, cx: &Ctx<'js>) -> Value<'js> {
        // SAFETY: a new reference to a live value of this context, owned by the `Value`.
        unsafe { Value::from_raw(cx.clone(), qjs::JS_DupValue(cx.as_raw().as_ptr(), self.0)) }
    }
}

/// An atom for `name`, kept for the life of the runtime.
pub fn keep_atom(cx: &Ctx, name: &str) -> Atom {
    // SAFETY: the pointer and length describe `name`; the atom is never freed.
    unsafe { qjs::JS_NewAtomLen(cx.as_raw().as_ptr(), name.as_ptr().cast(), name.len() as _) }
}

/// The context of the current `Context::with` call.
#[derive(Clone, Copy)]
pub struct Js<'js> {
    cx: *mut qjs::JSContext,
    _ctx: PhantomData<Ctx<'js>>,
}

/// A value this code holds a reference to, released when dropped.
pub struct Owned<'js> {
    js: Js<'js>,
    value: Raw,
}

impl<'js> Owned<'js> {
    pub fn raw(&self) -> Raw {
        self.value
    }

    /// Gives the reference away (to a call that takes ownership).
    fn into_raw(self) -> Raw {
        let value = self.value;
        std::mem::forget(self);
        value
    }

    pub fn is_undefined(&self) -> bool {
        // SAFETY: reading a value's tag.
        unsafe { qjs::JS_IsUndefined(self.value) }
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: this struct owns exactly one reference to the value.
        unsafe { qjs::JS_FreeValue(self.js.cx, self.value) }
    }
}

/// An own property, as `Object.getOwnPropertyDescriptor` sees it (no getter runs).
pub enum Own<'js> {
    Absent,
    Data {
        value: Owned<'js>,
        writable: bool,
    },
    Accessor {
        getter: Owned<'js>,
        setter: Owned<'js>,
    },
}

/// Own keys of an object, in `Object.keys` order.
pub struct Keys<'js> {
    js: Js<'js>,
    tab: *mut qjs::JSPropertyEnum,
    len: u32,
}

impl<'js> Keys<'js> {
    pub fn atoms(&self) -> impl Iterator<Item = Atom> + use<'_, 'js> {
        // SAFETY: `tab` holds `len` entries until `self` is dropped.
        (0..self.len as usize).map(|i| unsafe { (*self.tab.add(i)).atom })
    }
}

impl Drop for Keys<'_> {
    fn drop(&mut self) {
        // SAFETY: `tab` and `len` come from JS_GetOwnPropertyNames and are freed once.
        unsafe { qjs::JS_FreePropertyEnum(self.js.cx, self.tab, self.len) }
    }
}

impl<'js> Js<'js> {
    pub fn new(cx: &Ctx<'js>) -> Js<'js> {
        Js {
            cx: cx.as_raw().as_ptr(),
            _ctx: PhantomData,
        }
    }

    fn own_value(self, value: Raw) -> Option<Owned<'js>> {
        // SAFETY: reading a value's tag.
        if unsafe { qjs::JS_IsException(value) } {
            None
        } else {
            Some(Owned { js: self, value })
        }
    }

    /// A new reference to `value`.
    pub fn dup(self, value: Raw) -> Owned<'js> {
        // SAFETY: `value` is a live value of this context.
        Owned {
            js: self,
            value: unsafe { qjs::JS_DupValue(self.cx, value) },
        }
    }

    pub fn undefined(self) -> Owned<'js> {
        Owned {
            js: self,
            value: qjs::JS_UNDEFINED,
        }
    }

    pub fn bool(self, b: bool) -> Owned<'js> {
        Owned {
            js: self,
            value: if b { qjs::JS_TRUE } else { qjs::JS_FALSE },
        }
    }

    pub fn null(self) -> Owned<'js> {
        Owned {
            js: self,
            value: qjs::JS_NULL,
        }
    }

    pub fn int(self, n: i32) -> Owned<'js> {
        Owned {
            js: self,
            value: qjs::JS_MKVAL(qjs::JS_TAG_INT, n),
        }
    }

    pub fn string(self, s: &str) -> Option<Owned<'js>> {
        // SAFETY: the pointer and length describe `s`, valid UTF-8.
        self.own_value(unsafe { qjs::JS_NewStringLen(self.cx, s.as_ptr().cast(), s.len() as _) })
    }

    pub fn new_array(self) -> Option<Owned<'js>> {
        // SAFETY: plain allocation in this context.
        self.own_value(unsafe { qjs::JS_NewArray(self.cx) })
    }

    /// `object[atom] = value` (a [[Set]]: setters and `__proto__` behave as in JS).
    pub fn set(self, object: Raw, atom: Atom, value: Owned<'js>) -> bool {
        // SAFETY: JS_SetProperty takes over the reference to `value`.
        unsafe { qjs::JS_SetProperty(self.cx, object, atom, value.into_raw()) >= 0 }
    }

    /// Defines `object[atom]` as an own enumerable, writable, configurable data property,
    /// as an object literal does: no setter or `__proto__` of the prototype chain runs.
    pub fn define(self, object: Raw, atom: Atom, value: Owned<'js>) -> bool {
        let flags = qjs::JS_PROP_C_W_E as _;
        // SAFETY: JS_DefinePropertyValue takes over the reference to `value`.
        unsafe { qjs::JS_DefinePropertyValue(self.cx, object, atom, value.into_raw(), flags) >= 0 }
    }

    pub fn set_index(self, array: Raw, index: u32, value: Owned<'js>) -> bool {
        // SAFETY: JS_SetPropertyUint32 takes over the reference to `value`.
        unsafe { qjs::JS_SetPropertyUint32(self.cx, array, index, value.into_raw()) >= 0 }
    }

    /// `object[name] = value` with the key made as rquickjs's `Object::set(&str, ..)` makes
    /// it (`JS_NewAtomLen`), which the marshalling has always used for these maps.
    pub fn set_str(self, object: Raw, name: &str, value: Owned<'js>) -> bool {
        // SAFETY: the pointer and length describe `name`; the atom is freed after use.
        unsafe {
            let atom = qjs::JS_NewAtomLen(self.cx, name.as_ptr().cast(), name.len() as _);
            if atom == qjs::JS_ATOM_NULL {
                return false;
            }
            let done = self.set(object, atom, value);
            qjs::JS_FreeAtom(self.cx, atom);
            done
        }
    }

    /// `object[name] = value` with `name` a JS string, as JS's `object[name]` makes the key.
    pub fn set_computed(self, object: Raw, name: &str, value: Owned<'js>) -> bool {
        let Some(key) = self.string(name) else {
            return false;
        };
        // SAFETY: `key` is a live string; the atom is freed after use.
        unsafe {
            let atom = qjs::JS_ValueToAtom(self.cx, key.raw());
            if atom == qjs::JS_ATOM_NULL {
                return false;
            }
            let done = self.set(object, atom, value);
            qjs::JS_FreeAtom(self.cx, atom);
            done
        }
    }

    /// `object[atom]`, a [[Get]]: only for the prelude's own objects, whose properties
    /// are plain data.
    pub fn get(self, object: Raw, atom: Atom) -> Option<Owned<'js>> {
        // SAFETY: `object` is a live value of this context.
        self.own_value(unsafe { qjs::JS_GetProperty(self.cx, object, atom) })
    }

    /// The atom of an array index up to [`MAX_INDEX`]: a tagged integer, never freed.
    pub fn index(self, i: u32) -> Atom {
        debug_assert!(i <= MAX_INDEX);
        // SAFETY: below 2^31, QuickJS makes the atom from the number alone.
        unsafe { qjs::JS_NewAtomUInt32(self.cx, i) }
    }

    pub fn own(self, object: Raw, atom: Atom) -> Option<Own<'js>> {
        let mut desc = qjs::JSPropertyDescriptor {
            flags: 0,
            value: qjs::JS_UNDEFINED,
            getter: qjs::JS_UNDEFINED,
            setter: qjs::JS_UNDEFINED,
        };
        // SAFETY: on success the descriptor holds one reference to each of its values,
        // all of which are released or handed to an `Owned` here.
        unsafe {
            match qjs::JS_GetOwnProperty(self.cx, &mut desc, object, atom) {
                0 => Some(Own::Absent),
                1 => {
                    let value = Owned {
                        js: self,
                        value: desc.value,
                    };
                    let getter = Owned {
                        js: self,
                        value: desc.getter,
                    };
                    let setter = Owned {
                        js: self,
                        value: desc.setter,
                    };
                    if desc.flags & qjs::JS_PROP_GETSET as i32 != 0 {
                        Some(Own::Accessor { getter, setter })
                    } else {
                        let writable = desc.flags & qjs::JS_PROP_WRITABLE as i32 != 0;
                        Some(Own::Data { value, writable })
                    }
                }
                _ => None,
            }
        }
    }

    pub fn prototype(self, object: Raw) -> Option<Owned<'js>> {
        // SAFETY: `object` is a live value of this context.
        self.own_value(unsafe { qjs::JS_GetPrototype(self.cx, object) })
    }

    pub fn length(self, array: Raw) -> Option<i64> {
        let mut length = 0i64;
        // SAFETY: `array` is a live value of this context.
        (unsafe { qjs::JS_GetLength(self.cx, array, &mut length) } >= 0).then_some(length)
    }

    /// The own enumerable string keys, as `Object.keys` lists them.
    pub fn keys(self, object: Raw) -> Option<Keys<'js>> {
        self.own_keys(object, qjs::JS_GPN_STRING_MASK | qjs::JS_GPN_ENUM_ONLY)
    }

    /// All own string keys, enumerable or not.
    pub fn all_keys(self, object: Raw) -> Option<Keys<'js>> {
        self.own_keys(object, qjs::JS_GPN_STRING_MASK)
    }

    fn own_keys(self, object: Raw, flags: u32) -> Option<Keys<'js>> {
        let mut tab = std::ptr::null_mut();
        let mut len = 0;
        let flags = flags as i32;
        // SAFETY: on success `tab` holds `len` entries, released by `Keys`.
        if unsafe { qjs::JS_GetOwnPropertyNames(self.cx, &mut tab, &mut len, object, flags) } < 0 {
            return None;
        }
        Some(Keys { js: self, tab, len })
    }

    /// `value` as UTF-8, if it is a string (or, for numbers, its JS spelling) that UTF-8 can
    /// hold: a lone surrogate comes back as `None`.
    pub fn utf8(self, value: Raw) -> Option<String> {
        let mut len = 0;
        // SAFETY: a live context and value; `owned_utf8` frees the buffer.
        unsafe {
            let ptr = qjs::JS_ToCStringLen2(self.cx, &mut len, value, false);
            self.owned_utf8(ptr, len)
        }
    }

    /// An atom's name as UTF-8 (`None` for a lone surrogate).
    pub fn atom_utf8(self, atom: Atom) -> Option<String> {
        let mut len = 0;
        // SAFETY: a live context and atom; `owned_utf8` frees the buffer.
        unsafe {
            let ptr = qjs::JS_AtomToCStringLen(self.cx, &mut len, atom);
            self.owned_utf8(ptr, len)
        }
    }

    /// Copies a C string QuickJS returned (null on failure) into a `String` if it is valid
    /// UTF-8, and frees it.
    ///
    /// # Safety
    /// `ptr` is null or a buffer of `len` bytes from `JS_*ToCString*` on this context.
    unsafe fn owned_utf8(self, ptr: *const std::ffi::c_char, len: qjs::size_t) -> Option<String> {
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the caller's contract: `len` bytes, valid until JS_FreeCString.
        unsafe {
            let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize);
            let text = std::str::from_utf8(bytes).ok().map(str::to_owned);
            qjs::JS_FreeCString(self.cx, ptr);
            text
        }
    }

    /// `f(...args)` with `this` undefined.
    pub fn call(self, f: Raw, args: &[Raw]) -> Option<Owned<'js>> {
        // SAFETY: `args` are live values; QuickJS only reads them.
        self.own_value(unsafe {
            qjs::JS_Call(
                self.cx,
                f,
                qjs::JS_UNDEFINED,
                args.len() as _,
                args.as_ptr().cast_mut(),
            )
        })
    }

    /// `a === b`.
    pub fn strict_equal(self, a: Raw, b: Raw) -> bool {
        // SAFETY: both are live values of this context.
        unsafe { qjs::JS_IsStrictEqual(self.cx, a, b) }
    }

    /// Drops the pending exception, if any.
    pub fn clear_exception(self) {
        // SAFETY: JS_GetException hands over the pending exception (or undefined).
        drop(Owned {
            js: self,
            value: unsafe { qjs::JS_GetException(self.cx) },
        });
    }
}

/// A value's class: plain objects and arrays are told apart from proxies, functions and
/// the like by it.
pub fn class_id(value: Raw) -> u32 {
    // SAFETY: reading a value's header; JS_GetClassID returns 0 for non-objects.
    unsafe { qjs::JS_GetClassID(value) }
}

/// What a value is, for JSON.
pub enum Primitive {
    String,
    Int(i32),
    Float(f64),
    Bool(bool),
    Null,
    Undefined,
    Other,
}

pub fn primitive(value: Raw) -> Primitive {
    // SAFETY: reading a value's tag and payload.
    unsafe {
        match qjs::JS_VALUE_GET_NORM_TAG(value) {
            qjs::JS_TAG_STRING | qjs::JS_TAG_STRING_ROPE => Primitive::String,
            qjs::JS_TAG_INT => Primitive::Int(qjs::JS_VALUE_GET_INT(value)),
            qjs::JS_TAG_FLOAT64 => Primitive::Float(qjs::JS_VALUE_GET_FLOAT64(value)),
            qjs::JS_TAG_BOOL => Primitive::Bool(qjs::JS_VALUE_GET_BOOL(value)),
            qjs::JS_TAG_NULL => Primitive::Null,
            qjs::JS_TAG_UNDEFINED => Primitive::Undefined,
            _ => Primitive::Other,
        }
    }
}
