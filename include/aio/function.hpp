// SPDX-License-Identifier: LGPL-2.1-or-later
// aio::UniqueFunction: a move-only type-erased callable (std::move_only_function is C++23).
//
// Callables up to kInlineSize bytes that are nothrow-move-constructible live inline, so
// wrapping a lambda that captures a couple of pointers never allocates. Larger ones are
// boxed on the heap once, at construction.
//
// Thread safety: distinct objects are independent; one object must not be used from two
// threads at once without external synchronisation.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace aio {

template <class Signature>
class UniqueFunction;

template <class R, class... Args>
class UniqueFunction<R(Args...)> {
public:
    static constexpr std::size_t kInlineSize = 3 * sizeof(void*);

    UniqueFunction() noexcept = default;
    UniqueFunction(std::nullptr_t) noexcept {}

    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, UniqueFunction> &&
                 std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
    UniqueFunction(F&& f)  // NOLINT(google-explicit-constructor): mirrors std::function
    {
        using Fn = std::decay_t<F>;
        if constexpr (std::is_pointer_v<Fn> || std::is_member_pointer_v<Fn>) {
            if (f == nullptr) {
                return;
            }
        }
        if constexpr (fits_inline<Fn>()) {
            ::new (static_cast<void*>(buf_)) Fn(std::forward<F>(f));
            ops_ = &inline_ops<Fn>;
        } else {
            using Box = std::unique_ptr<Fn>;
            ::new (static_cast<void*>(buf_)) Box(std::make_unique<Fn>(std::forward<F>(f)));
            ops_ = &boxed_ops<Fn>;
        }
    }

    UniqueFunction(UniqueFunction&& other) noexcept : ops_(other.ops_)
    {
        if (ops_ != nullptr) {
            ops_->relocate(buf_, other.buf_);
            other.ops_ = nullptr;
        }
    }

    UniqueFunction& operator=(UniqueFunction&& other) noexcept
    {
        if (this != &other) {
            reset();
            if (other.ops_ != nullptr) {
                other.ops_->relocate(buf_, other.buf_);
                ops_ = std::exchange(other.ops_, nullptr);
            }
        }
        return *this;
    }

    UniqueFunction& operator=(std::nullptr_t) noexcept
    {
        reset();
        return *this;
    }

    UniqueFunction(const UniqueFunction&) = delete;
    UniqueFunction& operator=(const UniqueFunction&) = delete;

    ~UniqueFunction() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    // Precondition: *this holds a callable.
    R operator()(Args... args) { return ops_->call(buf_, std::forward<Args>(args)...); }

    void reset() noexcept
    {
        if (ops_ != nullptr) {
            ops_->destroy(buf_);
            ops_ = nullptr;
        }
    }

private:
    struct Ops {
        R (*call)(void*, Args&&...);
        // Move-construct into dst from src and destroy src.
        void (*relocate)(void* dst, void* src) noexcept;
        void (*destroy)(void*) noexcept;
    };

    template <class Fn>
    static constexpr bool fits_inline()
    {
        return sizeof(Fn) <= kInlineSize && alignof(Fn) <= alignof(std::max_align_t) &&
               std::is_nothrow_move_constructible_v<Fn>;
    }

    template <class T>
    static constexpr Ops make_ops(auto call)
    {
        return Ops{
            call,
            [](void* dst, void* src) noexcept {
                T* s = std::launder(static_cast<T*>(src));
                ::new (dst) T(std::move(*s));
                s->~T();
            },
            [](void* p) noexcept { std::launder(static_cast<T*>(p))->~T(); },
        };
    }

    template <class Fn>
    static constexpr Ops inline_ops = make_ops<Fn>([](void* p, Args&&... a) -> R {
        return std::invoke(*std::launder(static_cast<Fn*>(p)), std::forward<Args>(a)...);
    });

    template <class Fn>
    static constexpr Ops boxed_ops = make_ops<std::unique_ptr<Fn>>([](void* p, Args&&... a) -> R {
        return std::invoke(**std::launder(static_cast<std::unique_ptr<Fn>*>(p)),
                           std::forward<Args>(a)...);
    });

    alignas(std::max_align_t) unsigned char buf_[kInlineSize];
    const Ops* ops_ = nullptr;
};

}  // namespace aio
