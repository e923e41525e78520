"""Report cleaning (OCR noise) and section detection."""

from __future__ import annotations

from kemm.knowledge.clean import clean_report, is_barcode_line
from kemm.knowledge.sections import focus_text, sections_by_name, split_sections

NOISY = """UUID:33A159F3-8E7E-4B4F -9212-CAF878E94022
TCGA-3Z-A93Z -e1A-PR Redacted
III II IIIIIIIIII11111111111111111111111111IIIII11111111111111IIIII
SURGICAL PATHOLOGY REPORT
Patient:
DOB: AgeN&Sex:M Account:
MRN: 12345
FINAL DIAGNOSIS:
Right kidney, radical nephrectomy: renal cell carcinoma, clear cell type, Fuhrman nuclear
grade 3, measuring 4.5 cm in greatest dimension.
THIS CONFIDENTIAL AND PRIVILEGED DOCUMENT/INFORMATION IS PROTECTED BY FEDERAL AND STATE LAW.
Page 1 of 2
SURGICAL PATHOLOGY REPORT -CONTINUED
Patient:
MICROSCOPIC DESCRIPTION:
Sections show nests of clear cells with delicate vascula-
ture. Margins are uninvolved by tumor.
THIS CONFIDENTIAL AND PRIVILEGED DOCUMENT/INFORMATION IS PROTECTED BY FEDERAL AND STATE LAW.
GROSS DESCRIPTION:
Received in formalin is a 424-gram nephrectomy specimen.
Page 2 of 2
"""


def test_barcode_lines_are_detected():
    assert is_barcode_line("III II IIIIIIIIII11111111111111111111111111IIIII")
    assert is_barcode_line("|||| |||| lll1 1111 IIII")
    assert not is_barcode_line("Renal cell carcinoma, grade II")
    assert not is_barcode_line("III")


def test_clean_removes_ocr_noise_and_keeps_clinical_text():
    cleaned = clean_report(NOISY)
    for noise in ("UUID", "Redacted", "IIIIIIII", "MRN", "DOB", "Page 1", "Page 2", "CONTINUED"):
        assert noise not in cleaned, noise
    assert "CONFIDENTIAL" not in cleaned
    # clinical content survives, broken lines are joined, hyphenation repaired
    assert "Fuhrman nuclear grade 3, measuring 4.5 cm" in cleaned
    assert "delicate vasculature" in cleaned
    assert "Margins are uninvolved by tumor." in cleaned
    assert "424-gram nephrectomy specimen" in cleaned


def test_clean_repeated_boilerplate_kept_once_and_ocr_dot_joins_repaired():
    text = (
        "Department of Pathology, Example Hospital\nDiagnosis: carcinoma.\n"
        "Department of Pathology, Example Hospital\nMore text here.\n"
        "Department of Pathology, Example Hospital\n"
    )
    assert clean_report(text).count("Department of Pathology") == 1
    joined = "Received in the. container is a portion of breast with an attached skin ellipse."
    assert clean_report(joined).startswith("Received in the container is a portion")
    assert clean_report("fat ,radical nephrectomy") == "fat, radical nephrectomy"


def test_clean_keeps_single_line_reports_with_redaction_words():
    # Some OCR exports put a whole report on one line; a redaction mark must not erase it.
    text = "Final diagnosis: adenocarcinoma, grade 2. Patient name Redacted. " + "x " * 100
    assert "adenocarcinoma, grade 2" in clean_report(text)
    assert clean_report("") == ""


def test_sections_detected_in_line_and_inline_formats():
    sections = sections_by_name(clean_report(NOISY))
    assert "renal cell carcinoma" in sections["final_diagnosis"]
    assert "nests of clear cells" in sections["microscopic"]
    assert "424-gram" in sections["gross"]
    inline = (
        "Clinical History. LIVER CA. Final Diagnosis. A. LIVER: Hepatocellular carcinoma. "
        "Key Pathological Findings. HISTOLOGIC GRADE: G2. Gross Description. A 3 cm nodule."
    )
    names = [s.name for s in split_sections(inline)]
    assert names == ["clinical", "final_diagnosis", "synoptic", "gross"]
    assert sections_by_name(inline)["synoptic"] == "HISTOLOGIC GRADE: G2."


def test_focus_text_puts_diagnosis_first_within_budget():
    gross = "GROSS DESCRIPTION:\n" + "The specimen is received in formalin. " * 60
    text = gross + "\nFINAL DIAGNOSIS:\nClear cell renal cell carcinoma, grade 3, pT3a.\n"
    focused = focus_text(text, max_chars=400)
    assert len(focused) <= 400
    assert focused.startswith("FINAL DIAGNOSIS: Clear cell renal cell carcinoma, grade 3, pT3a.")
    assert focus_text("short", 100) == "short"
