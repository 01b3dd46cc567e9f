// SPDX-License-Identifier: LGPL-2.1-or-later
// block/thread-pool.h and the BlockAIOCB calls (block/aio.h, block/block-io.h) on
// aio::ThreadPool. A request is a BlockAIOCB followed by the job's aio::JobHandle.
#include "shim.hpp"

#include <aio/thread_pool.hpp>

#include <atomic>
#include <cerrno>
#include <new>
#include <system_error>

using aio::qemu::c_ctx;
using aio::qemu::cxx;
using aio::qemu::fatal;
using aio::qemu::fatal_exception;

namespace {

struct PoolRequest {
    BlockAIOCB common;  // first: a BlockAIOCB* is a PoolRequest*
    AioContext* ctx;
    aio::JobHandle handle;
};
static_assert(std::is_standard_layout_v<PoolRequest>);

PoolRequest* request(BlockAIOCB* acb) noexcept { return reinterpret_cast<PoolRequest*>(acb); }

void request_cancel_async(BlockAIOCB* acb) { request(acb)->handle.cancel_async(); }
AioContext* request_get_aio_context(BlockAIOCB* acb) { return request(acb)->ctx; }

const AIOCBInfo pool_request_info = {
    request_cancel_async,
    request_get_aio_context,
    sizeof(PoolRequest),
};

std::atomic_ref<int> refcnt(void* p) noexcept
{
    return std::atomic_ref<int>(static_cast<BlockAIOCB*>(p)->refcnt);
}

aio::ThreadPool& pool_of(ThreadPool* pool) noexcept
{
    return *reinterpret_cast<aio::ThreadPool*>(pool);
}

}  // namespace

// --- BlockAIOCB ------------------------------------------------------------------------------

void* qemu_aio_get(const AIOCBInfo* aiocb_info, BlockDriverState* bs, BlockCompletionFunc* cb,
                   void* opaque)
{
    auto* acb = static_cast<BlockAIOCB*>(g_malloc0(aiocb_info->aiocb_size));
    acb->aiocb_info = aiocb_info;
    acb->bs = bs;
    acb->cb = cb;
    acb->opaque = opaque;
    acb->refcnt = 1;
    return acb;
}

void qemu_aio_ref(void* p)
{
    // Atomic (QEMU's is not): a request may be submitted from one thread and completed
    // in another.
    refcnt(p).fetch_add(1, std::memory_order_relaxed);
}

void qemu_aio_unref(void* p)
{
    const int old = refcnt(p).fetch_sub(1, std::memory_order_acq_rel);
    if (old <= 0) {
        fatal(__func__, "reference count underflow");
    }
    if (old == 1) {
        auto* acb = static_cast<BlockAIOCB*>(p);
        if (acb->aiocb_info == &pool_request_info) {
            request(acb)->~PoolRequest();
        }
        g_free(acb);
    }
}

void bdrv_aio_cancel_async(BlockAIOCB* acb)
{
    if (acb->aiocb_info->cancel_async != nullptr) {
        acb->aiocb_info->cancel_async(acb);
    }
}

void bdrv_aio_cancel(BlockAIOCB* acb)
{
    qemu_aio_ref(acb);
    bdrv_aio_cancel_async(acb);
    // The completion drops its reference after running the callback.
    while (refcnt(acb).load(std::memory_order_acquire) > 1) {
        if (acb->aiocb_info->get_aio_context == nullptr) {
            fatal(__func__, "the AIOCB's AIOCBInfo has no get_aio_context");
        }
        aio_poll(acb->aiocb_info->get_aio_context(acb), true);
    }
    qemu_aio_unref(acb);
}

// --- the pool ---------------------------------------------------------------------------------

ThreadPool* thread_pool_new(AioContext* ctx)
{
    return reinterpret_cast<ThreadPool*>(aio_get_thread_pool(ctx));
}

void thread_pool_free(ThreadPool*) {}

void thread_pool_update_params(ThreadPool*, AioContext*) {}

BlockAIOCB* thread_pool_submit_aio(ThreadPool* pool, ThreadPoolFunc* func, void* arg,
                                   BlockCompletionFunc* cb, void* opaque)
{
    if (func == nullptr) {
        fatal(__func__, "NULL function");
    }
    aio::ThreadPool& p = pool_of(pool);
    void* mem = g_malloc0(sizeof(PoolRequest));
    auto* req = new (mem) PoolRequest{};
    req->common.aiocb_info = &pool_request_info;
    req->common.cb = cb;
    req->common.opaque = opaque;
    req->common.refcnt = 2;  // the completion's and ours (until the handle is stored)
    req->ctx = c_ctx(&p.context());
    try {
        req->handle = p.submit([func, arg] { return func(arg); },
                               [req](aio::Result<int> r) {
                                   const int ret = r.cancelled() ? -ECANCELED
                                                   : r.ok()      ? r.value()
                                                                 : -EIO;
                                   if (req->common.cb != nullptr) {
                                       req->common.cb(req->common.opaque, ret);
                                   }
                                   qemu_aio_unref(req);
                               });
    } catch (const std::system_error& e) {
        // No worker could be started and none is alive: complete the request with the
        // error, from the loop as any completion.
        const int err = e.code().value() != 0 ? e.code().value() : EAGAIN;
        try {
            p.context().schedule(
                [req, err] {
                    if (req->common.cb != nullptr) {
                        req->common.cb(req->common.opaque, -err);
                    }
                    qemu_aio_unref(req);
                },
                "thread-pool-submit-failed");
        } catch (...) {
            fatal_exception(__func__);
        }
    } catch (...) {
        fatal_exception(__func__);
    }
    qemu_aio_unref(req);
    return &req->common;
}

void thread_pool_submit(ThreadPool* pool, ThreadPoolFunc* func, void* arg)
{
    thread_pool_submit_aio(pool, func, arg, nullptr, nullptr);
}
