package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// SPDX 2.3 JSON, the fields this SBOM fills.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID                string            `json:"SPDXID"`
	Name                  string            `json:"name"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	LicenseDeclared       string            `json:"licenseDeclared,omitempty"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	Checksums             []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
	Comment               string            `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// spdxDocument describes the image of platform p: the image, each binary in
// it (with its sha256), and every module and the Go standard library each
// binary was built from, read from the binary's build info (what
// `go version -m` prints).
func spdxDocument(m meta, p platform, files []layerFile) ([]byte, error) {
	imageID := "SPDXRef-Image"
	doc := spdxDoc{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              fmt.Sprintf("mtlsguard-%s-%s-%s", m.Version, p.OS, p.Arch),
		DocumentNamespace: fmt.Sprintf("%s/sbom/%s/%s-%s", m.Source, m.Version, p.OS, p.Arch),
		CreationInfo: spdxCreationInfo{
			Created:  m.Created.Format("2006-01-02T15:04:05Z"),
			Creators: []string{"Tool: mtlsguard-hack-release", "Organization: mtlsguard"},
		},
		Packages: []spdxPackage{{
			SPDXID:                imageID,
			Name:                  "mtlsguard",
			VersionInfo:           m.Version,
			DownloadLocation:      m.Source,
			LicenseDeclared:       m.Licenses,
			PrimaryPackagePurpose: "CONTAINER",
			ExternalRefs: []spdxExternalRef{{
				ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
				ReferenceLocator: fmt.Sprintf("pkg:oci/mtlsguard@%s?arch=%s", m.Version, p.Arch),
			}},
			Comment: "revision " + m.Revision,
		}},
		Relationships: []spdxRelationship{{"SPDXRef-DOCUMENT", "DESCRIBES", imageID}},
	}
	seen := map[string]bool{}
	addModule := func(from, path, version, comment string) {
		id := spdxID("Go", path, version)
		if !seen[id] {
			seen[id] = true
			doc.Packages = append(doc.Packages, spdxPackage{
				SPDXID:           id,
				Name:             path,
				VersionInfo:      version,
				DownloadLocation: "NOASSERTION",
				ExternalRefs: []spdxExternalRef{{
					ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
					ReferenceLocator: "pkg:golang/" + path + "@" + version,
				}},
				Comment: comment,
			})
		}
		doc.Relationships = append(doc.Relationships, spdxRelationship{from, "DEPENDS_ON", id})
	}
	for _, f := range files {
		raw, err := os.ReadFile(f.Path)
		if err != nil {
			return nil, err
		}
		bi, err := buildinfo.ReadFile(f.Path)
		if err != nil {
			return nil, fmt.Errorf("build info of %s: %w", f.Path, err)
		}
		sum := sha256.Sum256(raw)
		id := spdxID("Binary", f.Name, "")
		var settings []string
		for _, s := range bi.Settings {
			settings = append(settings, s.Key+"="+s.Value)
		}
		doc.Packages = append(doc.Packages, spdxPackage{
			SPDXID:                id,
			Name:                  "/" + f.Name,
			VersionInfo:           m.Version,
			DownloadLocation:      m.Source,
			LicenseDeclared:       m.Licenses,
			PrimaryPackagePurpose: "APPLICATION",
			Checksums:             []spdxChecksum{{"SHA256", hex.EncodeToString(sum[:])}},
			ExternalRefs: []spdxExternalRef{{
				ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
				ReferenceLocator: fmt.Sprintf("pkg:golang/%s@%s?type=module&goos=%s&goarch=%s", bi.Main.Path, m.Version, p.OS, p.Arch),
			}},
			Comment: "package " + bi.Path + "; build settings: " + strings.Join(settings, " "),
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{imageID, "CONTAINS", id})
		addModule(id, "stdlib", bi.GoVersion, "the Go standard library and runtime")
		for _, d := range bi.Deps {
			path, version, sum := d.Path, d.Version, d.Sum
			comment := "go.sum " + sum
			if d.Replace != nil {
				comment = fmt.Sprintf("replaced by %s %s, go.sum %s", d.Replace.Path, d.Replace.Version, d.Replace.Sum)
				path, version = d.Replace.Path, d.Replace.Version
			}
			addModule(id, path, version, comment)
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

var spdxIDChars = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxID makes an SPDX identifier (letters, digits, '.', '-') of parts.
func spdxID(kind string, parts ...string) string {
	s := "SPDXRef-" + kind + "-" + strings.Join(parts, "-")
	return strings.TrimRight(spdxIDChars.ReplaceAllString(s, "-"), "-")
}
