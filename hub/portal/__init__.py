"""The portal: server-rendered pages in ``hub serve`` under ``/portal`` where departments,
the data bureau, application owners and auditors do their work (sign-in with roles, the
catalog, supply and demand, supervision, quality, audit, health). Every asset is served
by the hub itself. See :mod:`hub.portal.views` for the request pipeline and
:mod:`hub.portal.policy` for who may do what."""

from hub.portal.views import portal_router

__all__ = ["portal_router"]
