// Package api holds shoal's wire objects (apiVersion shoal/v1): their Go
// types, defaults, validation and the YAML/JSON codecs that turn user input
// into them.
//
// It owns what an object looks like and what makes one valid. It must not
// import any other shoal package, talk to the store or the network, or know
// how objects are reconciled.
package api
