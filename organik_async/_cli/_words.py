"""The words of the summary and the progress line, in English and Turkish (``--lang``).

The English text is the key; `word()` gives the Turkish for it with
``--lang tr``. Templates keep their ``{placeholders}``, filled by the caller.
Numbers keep one form in both languages (``200,000``, ``6.7 %``), as in the
``--summary-json`` file; the status and error-code descriptions are the
provider's own words, in `_summary`.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["TURKISH", "Lang", "word"]

Lang = Literal["en", "tr"]

TURKISH: Final[dict[str, str]] = {
    # The progress line.
    "fetching": "alınıyor",
    "batches": "parti",
    "rows": "satır",
    "rows/s": "satır/sn",
    "in flight": "açık istek",
    "retries": "yeniden deneme",
    "failed": "başarısız",
    "ETA": "kalan",
    # Headlines.
    "complete": "tamamlandı",
    "nothing to fetch: every ID is already in the output": (
        "alınacak bir şey yok: her kimlik zaten çıktıda"
    ),
    "nothing to fetch: the input holds no IDs": "alınacak bir şey yok: girdide kimlik yok",
    "finished with failures": "hatalarla bitti",
    "finished with rows still pending": "bekleyen satırlarla bitti",
    "interrupted": "durduruldu",
    "authentication refused": "kimlik doğrulaması reddedildi",
    "stopped by an error": "bir hatayla durdu",
    "summary": "özet",
    # The facts.
    "IDs": "kimlikler",
    "requests": "istekler",
    "journal": "günlük",
    "follow": "takip",
    "{rows} in {where} ({format})": "{rows}, {where} içinde ({format})",
    "standard output": "standart çıktı",
    ", {new} of them new": ", {new} tanesi yeni",
    "none written: {where} left unchanged": "hiç yazılmadı: {where} değiştirilmedi",
    "none written: {where} not created": "hiç yazılmadı: {where} oluşturulmadı",
    "none written": "hiç yazılmadı",
    "{rows} rows skipped: already written (reached through another ID kind)": (
        "{rows} satır atlandı: zaten yazılmıştı (başka bir kimlik türüyle ulaşıldı)"
    ),
    "{fetched} fetched, {failed} failed, {without} matched no row": (
        "{fetched} alındı, {failed} başarısız, {without} hiçbir satırla eşleşmedi"
    ),
    "left out: {what}": "dışarıda kalan: {what}",
    "already in the output (resumed)": "zaten çıktıda (devam edildi)",
    "duplicates": "yinelenen",
    "in other shards": "diğer parçalarda",
    "bad lines skipped": "atlanan hatalı satır",
    "{requests} ({retries} retried, {refusals} refused) in {seconds} s, {rate} rows/s": (
        "{requests} ({retries} yeniden deneme, {refusals} ret), {seconds} sn, {rate} satır/sn"
    ),
    "{requests} ({retries} retried, {refusals} refused) in {seconds} s": (
        "{requests} ({retries} yeniden deneme, {refusals} ret), {seconds} sn"
    ),
    "{rounds} rounds, {requests} requests for pending rows": (
        "{rounds} tur, bekleyen satırlar için {requests} istek"
    ),
    "{path} (what --resume reads)": "{path} (--resume bunu okur)",
    "inputs": "girdiler",
    "{path}: {rows} rows ({format}), {kept} kept": (
        "{path}: {rows} satır ({format}), {kept} tutuldu"
    ),
    "{rows} rows left out: another copy of their gsm_track_id was kept": (
        "{rows} satır dışarıda kaldı: gsm_track_id'lerinin başka bir kopyası tutuldu"
    ),
    "{keys} gsm_track_ids had copies that differ: kept the one furthest along (a final "
    "status, then the later finish_date)": (
        "{keys} gsm_track_id'nin kopyaları farklıydı: en ileri olanı tutuldu (önce "
        "kesinleşmiş durum, sonra daha geç finish_date)"
    ),
    # The tables.
    "status": "durum",
    "delivery status": "iletim durumu",
    "share": "pay",
    "errorcode": "hata kodu",
    "most frequent per-number error codes": "en sık görülen numara hata kodları",
    "failed because": "başarısızlık nedeni",
    # The lines after the tables.
    "{rows} rows still pending ({reason}): not in the output; their gsm_track_ids are in "
    "the failed file": (
        "{rows} satır hâlâ bekliyor ({reason}): çıktıda yok; gsm_track_id'leri başarısızlar "
        "dosyasında"
    ),
    "failed IDs, with their reasons: {path} ({how})": (
        "başarısız kimlikler, nedenleriyle: {path} ({how})"
    ),
    "fetch them with --ids FILE --until-final": "--ids DOSYA --until-final ile alın",
    "re-run with --resume, or fetch them with --ids FILE": (
        "--resume ile yeniden çalıştırın ya da --ids DOSYA ile alın"
    ),
    "skipped {line}": "atlandı: {line}",
}


def word(english: str, lang: Lang) -> str:
    """``english`` in ``lang``."""
    return TURKISH[english] if lang == "tr" else english
