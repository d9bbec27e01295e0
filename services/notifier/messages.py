"""The next step told to the partner, in its locale (en, es, de, fr)."""

from __future__ import annotations

from shared.vocabulary import Outcome

NEXT_STEP: dict[Outcome, dict[str, str]] = {
    Outcome.LINKED_TO_INCIDENT: {
        "en": "A known Microsoft service incident covers this issue. Tell the customer and follow "
        "the incident; no request to Microsoft is needed.",
        "es": "Un incidente de servicio conocido de Microsoft cubre esta incidencia. Informe al "
        "cliente y siga el incidente; no hace falta abrir una solicitud con Microsoft.",
        "de": "Ein bekannter Microsoft-Dienstvorfall deckt dieses Problem ab. Informieren Sie den "
        "Kunden und verfolgen Sie den Vorfall; eine Anfrage bei Microsoft ist nicht nötig.",
        "fr": "Un incident de service Microsoft connu couvre ce problème. Informez le client et "
        "suivez l'incident ; aucune demande auprès de Microsoft n'est nécessaire.",
    },
    Outcome.PARTNER_RESOLVES: {
        "en": "This issue is yours to resolve; it is not a Microsoft hand-off.",
        "es": "Esta incidencia la resuelve usted; no se traslada a Microsoft.",
        "de": "Dieses Problem lösen Sie selbst; es wird nicht an Microsoft übergeben.",
        "fr": "Ce problème est à résoudre par vous ; il n'est pas transmis à Microsoft.",
    },
    Outcome.ESCALATED_TO_MICROSOFT: {
        "en": "A Microsoft request record was opened; file it with Microsoft through the vehicle "
        "named and keep the customer informed.",
        "es": "Se abrió un registro de solicitud a Microsoft; preséntelo a través del canal "
        "indicado y mantenga informado al cliente.",
        "de": "Ein Microsoft-Anfragedatensatz wurde angelegt; reichen Sie ihn über den genannten "
        "Supportweg ein und halten Sie den Kunden auf dem Laufenden.",
        "fr": "Une demande Microsoft a été préparée ; déposez-la via le canal indiqué et tenez "
        "le client informé.",
    },
    Outcome.ROUTED_TO_INDIRECT_PROVIDER: {
        "en": "This issue was handed off to your indirect provider, who escalates it to Microsoft.",
        "es": "Esta incidencia se trasladó a su proveedor indirecto, que la escala a Microsoft.",
        "de": "Dieses Problem wurde an Ihren indirekten Anbieter übergeben, der es an Microsoft "
        "eskaliert.",
        "fr": "Ce problème a été transmis à votre fournisseur indirect, qui l'escalade auprès de "
        "Microsoft.",
    },
    Outcome.NEEDS_INFORMATION: {
        "en": "More information is needed before this issue can be routed: ask the customer the "
        "question in the reasons, then give the issue its category, the ticket's new text or "
        "its ticket type (PATCH with `category`, `description` or `psa_type`) to have it "
        "routed.",
        "es": "Se necesita más información antes de poder encaminar esta incidencia: haga al "
        "cliente la pregunta de los motivos y luego indique la categoría, el nuevo texto "
        "del ticket o su tipo de ticket (PATCH con `category`, `description` o `psa_type`) "
        "para que se encamine.",
        "de": "Es werden weitere Informationen benötigt, bevor dieses Problem zugeordnet "
        "werden kann: Stellen Sie dem Kunden die Frage aus den Gründen und geben Sie dann die "
        "Kategorie, den neuen Tickettext oder den Tickettyp an (PATCH mit `category`, "
        "`description` oder `psa_type`), damit es zugeordnet wird.",
        "fr": "Des informations supplémentaires sont nécessaires avant d'orienter ce problème : "
        "posez au client la question indiquée dans les motifs, puis donnez la catégorie, le "
        "nouveau texte du ticket ou son type de ticket (PATCH avec `category`, `description` "
        "ou `psa_type`) pour qu'il soit orienté.",
    },
}


# The Partner Center connector files the request itself.
FILING_BY_CONNECTOR = {
    "en": "A Microsoft request was opened and is being filed through Partner Center; "
    "microsoft_request.updated brings Microsoft's request number. Keep the customer informed.",
    "es": "Se abrió una solicitud a Microsoft y se está presentando a través del Centro de "
    "partners; microsoft_request.updated traerá el número de Microsoft. Mantenga informado al "
    "cliente.",
    "de": "Eine Microsoft-Anfrage wurde angelegt und wird über das Partner Center eingereicht; "
    "microsoft_request.updated liefert die Anfragenummer von Microsoft. Halten Sie den Kunden "
    "auf dem Laufenden.",
    "fr": "Une demande Microsoft a été ouverte et est déposée via l'Espace partenaires ; "
    "microsoft_request.updated apportera le numéro de Microsoft. Tenez le client informé.",
}
# An indirect reseller without a subscribed provider endpoint passes the hand-off on itself.
PROVIDER_NOT_NOTIFIED = {
    "en": "This issue goes to your indirect provider, but no provider endpoint is subscribed: "
    "send the hand-off details to your provider yourself.",
    "es": "Esta incidencia corresponde a su proveedor indirecto, pero no hay ningún endpoint del "
    "proveedor suscrito: envíele usted los datos del traspaso.",
    "de": "Dieses Problem geht an Ihren indirekten Anbieter, aber es ist kein Endpunkt des "
    "Anbieters abonniert: Senden Sie ihm die Übergabedaten selbst.",
    "fr": "Ce problème relève de votre fournisseur indirect, mais aucun point de terminaison du "
    "fournisseur n'est abonné : transmettez-lui vous-même les éléments du transfert.",
}


def next_step(
    outcome: Outcome,
    locale: str | None,
    *,
    filing: str | None = None,
    provider_notified: bool | None = None,
) -> str:
    """The next step for ``outcome``; ``filing`` is the Microsoft request's submission state,
    ``provider_notified`` whether a provider endpoint was sent the hand-off."""
    texts = NEXT_STEP[outcome]
    if outcome is Outcome.ESCALATED_TO_MICROSOFT and filing == "queued":
        texts = FILING_BY_CONNECTOR
    if outcome is Outcome.ROUTED_TO_INDIRECT_PROVIDER and provider_notified is False:
        texts = PROVIDER_NOT_NOTIFIED
    return texts.get((locale or "en")[:2].lower(), texts["en"])
