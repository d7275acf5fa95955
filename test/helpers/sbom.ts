/**
 * A Debian image's SBOM in the shape syft writes SPDX 2.3 (packages with purl externalRefs, files,
 * CONTAINS package → file): built here, since syft's own fixtures keep no Debian file list.
 */
export function debianSpdx(packages: { name: string; version: string; files: string[] }[]): string {
  return JSON.stringify({
    spdxVersion: 'SPDX-2.3',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: 'debian',
    creationInfo: { creators: ['Organization: Anchore, Inc', 'Tool: syft-1.18.1'] },
    packages: packages.map((p, i) => ({
      SPDXID: `SPDXRef-Package-deb-${p.name}-${i}`,
      name: p.name,
      versionInfo: p.version,
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:deb/debian/${p.name}@${p.version}?arch=amd64&distro=debian-12` }],
    })),
    files: packages.flatMap((p, i) => p.files.map((f, j) => ({ SPDXID: `SPDXRef-File-${i}-${j}`, fileName: f }))),
    relationships: packages.flatMap((p, i) => p.files.map((_, j) => ({ spdxElementId: `SPDXRef-Package-deb-${p.name}-${i}`, relationshipType: 'CONTAINS', relatedSpdxElement: `SPDXRef-File-${i}-${j}` }))),
  });
}
